"""Scaffolds for ``kilobox init`` (kept as Python strings: no package data to ship).

Each template is ``str.format``-ed with ``name``; literal braces are doubled.
"""

from __future__ import annotations

import os
from pathlib import Path

TOML = '''\
# kilobox.toml: how `kilobox build` turns this directory into a micro-image.
# Keys: see docs/build.md (kilobox's README, section "kilobox.toml").
name = "{name}"
tag = "latest"
lang = "{lang}"
sources = ["{source}"]

# entrypoint = ["/{name}"]        # where the binary goes in the image (the default)
# cmd = ["--port", "8080"]
# env = {{ PORT = "8080" }}
# ports = ["8080/tcp"]
user = "65532:65532"              # the "nonroot" user of distroless and apko

platforms = ["linux/amd64"]       # also: linux/arm64, linux/arm/v7, linux/riscv64
max_size = "16KiB"                # the build fails when the image is larger
'''

MAIN_C = '''\
/* {name}: a static, libc-linked C program (compiled with zig cc for musl). */
#include <unistd.h>

int main(void) {{
    static const char msg[] = "hello from {name}\\n";
    return write(1, msg, sizeof msg - 1) == (ssize_t)(sizeof msg - 1) ? 0 : 1;
}}
'''

MAIN_ZIG = '''\
//! {name}: a static Zig program (zig build-exe -OReleaseSmall).
const std = @import("std");

pub fn main() !void {{
    try std.fs.File.stdout().writeAll("hello from {name}\\n");
}}
'''

README = '''\
# {name}

A micro-container made with kilobox: one static binary in an otherwise empty image.

```
kilobox build . -o oci:out:{name}          # compile, assemble, print the size table
skopeo inspect oci:out:{name}              # look at it
podman run --rm oci:out:{name}             # run it (or: kilobox run oci:out:{name})
```

Edit `{source}`, then build again: compiles are cached, and the same sources give the
same image digest on any machine. `kilobox.toml` sets the entrypoint, environment,
ports, platforms and the size budget (`max_size`).
'''

SOURCES = {"c": ("main.c", MAIN_C), "zig": ("main.zig", MAIN_ZIG)}


def render(lang: str, name: str) -> dict[str, str]:
    """file name → content for a new project."""
    source, main = SOURCES[lang]
    fields = {"name": name, "lang": lang, "source": source}
    return {"kilobox.toml": TOML.format(**fields), source: main.format(**fields),
            "README.md": README.format(**fields)}


def scaffold(directory: str | os.PathLike[str], lang: str = "c") -> list[Path]:
    """Create *directory* with kilobox.toml, the main source and a README; the files written.

    The image name is the directory's name. Refuses to touch a non-empty directory.
    """
    from ...errors import UsageError
    from ..config import valid_name
    if lang not in SOURCES:
        raise UsageError(f"unknown language {lang!r}", hint="use --lang c or --lang zig")
    d = Path(directory)
    name = d.absolute().name
    if not valid_name(name):
        raise UsageError(f"{name!r} is not a valid image name",
                         hint="use lower case letters, digits and . _ - separators, e.g. my-service")
    if d.exists() and (not d.is_dir() or any(d.iterdir())):
        raise UsageError(f"{d} already exists and is not an empty directory",
                         hint="choose a new name, or remove it first")
    d.mkdir(parents=True, exist_ok=True)
    written = []
    for fname, text in render(lang, name).items():
        p = d / fname
        p.write_text(text)
        written.append(p)
    return written


__all__ = ["render", "scaffold", "SOURCES"]
