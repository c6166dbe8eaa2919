"""kilobox: build, ship, run, audit and slim micro-containers.

The Python API mirrors the CLI, one call per command::

    import kilobox
    kilobox.copy("oci:./out:hello", "docker://127.0.0.1:5000/demo/hello:1")
    kilobox.digest("127.0.0.1:5000/demo/hello:1")
    kilobox.inspect("docker-archive:app.tar")
    kilobox.unpack("oci:./lay:app", "./rootfs", platform="linux/arm64")
    kilobox.tags("127.0.0.1:5000/demo/hello")

Submodules are imported on first use, so ``import kilobox`` stays cheap.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name → "module:attribute"
_API = {
    "copy": "kilobox.copying:copy",
    "digest": "kilobox.api:digest",
    "inspect": "kilobox.api:inspect",
    "unpack": "kilobox.api:unpack",
    "tags": "kilobox.api:tags",
    "prune": "kilobox.api:prune",
    "open_image": "kilobox.image:open_image",
    "Image": "kilobox.image:Image",
    "Options": "kilobox.formats:Options",
    "Store": "kilobox.store:Store",
    "build": "kilobox.build:build",
    "run": "kilobox.run:run",
    "audit": "kilobox.audit:audit",
    "sbom": "kilobox.audit.sbom:sbom",
    "diff": "kilobox.audit.diff:diff",
    "compare": "kilobox.audit.compare:compare",
    "slim": "kilobox.slim:slim",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str) -> object:
    target = _API.get(name)
    if target is None:
        raise AttributeError(f"module 'kilobox' has no attribute {name!r}")
    mod, _, attr = target.partition(":")
    value = getattr(importlib.import_module(mod), attr)
    globals()[name] = value
    return value
