"""Path rules shared by the writer, the reader and the extractor."""

from __future__ import annotations

from ..errors import LayerError

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


def clean(name: str, where: str = "layer") -> str:
    """Normalise a tar member name: no leading ``/`` or ``./``, no ``.`` parts, ``..`` resolved.

    The root itself is ``'.'``. A ``..`` that would climb above the root, an
    empty component from ``//`` aside, or a NUL byte raise :class:`LayerError`.
    """
    if "\0" in name:
        raise LayerError(f"{where}: entry name {name!r} contains a NUL byte")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise LayerError(f"{where}: entry {name!r} climbs out of the root with '..'",
                                 hint="the layer is hostile or corrupt; do not use it")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts) or "."


def split(path: str) -> tuple[str, ...]:
    """Components of a cleaned path (``()`` for the root)."""
    return () if path == "." else tuple(path.split("/"))


def sort_key(path: str) -> tuple[tuple[int, bytes], ...]:
    """Deterministic order: a tree walk, parents first, whiteouts before their siblings."""
    return tuple((0 if c.startswith(WHITEOUT_PREFIX) else 1, c.encode("utf-8", "surrogateescape"))
                 for c in split(path))
