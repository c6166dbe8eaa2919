"""Tar members as the audit reads them: kilobox's streaming layer reader (:mod:`kilobox.layers.reader`).

Names come cleaned (no leading ``/``, ``..`` refused), PAX headers are bounded, xattrs
(``SCHILY.xattr.*``) are decoded, and a corrupt or hostile tar raises :class:`LayerError`.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

from ..layers import Member, iter_layer


def iter_members(stream: BinaryIO, where: str) -> Iterator[Member]:
    """Members of the (possibly compressed) tar *stream*; *where* names it in errors."""
    return iter_layer(stream, name=where)


__all__ = ["Member", "iter_members"]
