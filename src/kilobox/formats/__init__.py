"""One module per format, all speaking the model in :mod:`kilobox.oci`.

:func:`open_source` and :func:`open_sink` pick the module for a location;
each module is imported only when used (CLI start-up stays lean).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..transports import Location
from .base import Sink, Source


@dataclass
class Options:
    """Settings shared by the formats (mostly the registry)."""

    insecure: tuple[str, ...] = ()          # registries to reach over plain http
    username: str | None = None
    password: str | None = None
    docker_config: str | None = None        # path of config.json (default ~/.docker/config.json)
    progress: Callable[[str, int, int], None] | None = None  # (what, done, total)
    tag: str = ""                           # default tag for sinks when the location has none
    extra: dict[str, object] = field(default_factory=dict)


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
