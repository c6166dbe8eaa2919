"""One module per format, all speaking the model in :mod:`kilobox.oci`.

:func:`open_source` and :func:`open_sink` pick the module for a location;
each module is imported only when used (CLI start-up stays lean).
"""

from __future__ import annotations

from .._record import Record
from ..transports import Location
from .base import Sink, Source

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Callable

#: Options' fields in order, with their defaults (``extra``: a new dict each time)
_OPTION_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("insecure", ()), ("username", None), ("password", None), ("docker_config", None), ("progress", None),
    ("tag", ""), ("extra", None), ("cert_dir", None), ("tls_verify", None))


class _DataclassCompatible(type):
    """Lets :func:`dataclasses.replace` (and ``fields``/``asdict``) work on :class:`Options`
    without importing :mod:`dataclasses` at start-up (it costs ~8 ms through ``inspect``):
    ``__dataclass_fields__`` is built from an equivalent dataclass on first access."""

    def __getattr__(cls, name: str) -> object:
        if name != "__dataclass_fields__":
            raise AttributeError(name)
        import dataclasses
        shadow = dataclasses.make_dataclass("Options", [
            (k, object, dataclasses.field(default_factory=dict) if k == "extra" else dataclasses.field(default=v))
            for k, v in _OPTION_DEFAULTS])
        fields = shadow.__dataclass_fields__  # type: ignore[attr-defined]
        type.__setattr__(cls, "__dataclass_fields__", fields)
        return fields


class Options(Record, metaclass=_DataclassCompatible):
    """Settings shared by the formats (mostly the registry).

    Behaves as the dataclass it was: keyword or positional fields, ``==``, repr,
    and ``dataclasses.replace(opts, tag=…)``.
    """

    __slots__ = tuple(k for k, _ in _OPTION_DEFAULTS)
    insecure: tuple[str, ...]          # registries to reach over plain http
    username: str | None
    password: str | None
    docker_config: str | None          # path of config.json (default ~/.docker/config.json)
    progress: Callable[[str, int, int], None] | None   # (what, done, total)
    tag: str                           # default tag for sinks when the location has none
    extra: dict[str, object]
    cert_dir: str | None               # --cert-dir: CA (*.crt) and client (*.cert/*.key) files for every registry
    tls_verify: bool | None            # --tls-verify: None = default (verify; loopback stays http), False = skip

    def __init__(self, insecure: tuple[str, ...] = (), username: str | None = None, password: str | None = None,
                 docker_config: str | None = None, progress: Callable[[str, int, int], None] | None = None,
                 tag: str = "", extra: dict[str, object] | None = None, cert_dir: str | None = None,
                 tls_verify: bool | None = None) -> None:
        self.insecure = insecure
        self.username = username
        self.password = password
        self.docker_config = docker_config
        self.progress = progress
        self.tag = tag
        self.extra = {} if extra is None else extra
        self.cert_dir = cert_dir
        self.tls_verify = tls_verify

    def __getattr__(self, name: str) -> object:
        if name == "__dataclass_fields__":       # dataclasses.fields(instance) before the class was asked
            return type(self).__dataclass_fields__
        raise AttributeError(f"'Options' object has no attribute {name!r}")


def open_source(location: str | Location, options: Options | None = None) -> Source:
    """A :class:`Source` for *location* (a string in skopeo's spelling, or parsed)."""
    loc = location if isinstance(location, Location) else Location.parse(location)
    opts = options or Options()
    if loc.transport == "oci":
        from .layout import LayoutSource
        return LayoutSource(loc.path, loc.tag)
    if loc.transport == "oci-archive":
        from .ociarchive import OciArchiveSource
        return OciArchiveSource(loc.path, loc.tag)
    if loc.transport == "docker-archive":
        from .dockerarchive import DockerArchiveSource
        return DockerArchiveSource(loc.path, loc.tag)
    from .registry import RegistrySource
    assert loc.ref is not None
    return RegistrySource(loc.ref, opts)


def open_sink(location: str | Location, options: Options | None = None) -> Sink:
    """A :class:`Sink` for *location*."""
    loc = location if isinstance(location, Location) else Location.parse(location)
    opts = options or Options()
    if loc.transport == "oci":
        from .layout import LayoutSink
        return LayoutSink(loc.path, loc.tag or opts.tag)
    if loc.transport == "oci-archive":
        from .ociarchive import OciArchiveSink
        return OciArchiveSink(loc.path, loc.tag or opts.tag)
    if loc.transport == "docker-archive":
        from .dockerarchive import DockerArchiveSink
        return DockerArchiveSink(loc.path, loc.tag or opts.tag)
    from .registry import RegistrySink
    assert loc.ref is not None
    return RegistrySink(loc.ref, opts)


__all__ = ["Options", "Source", "Sink", "open_source", "open_sink", "Location"]
