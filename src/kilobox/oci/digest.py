"""Content digests (OCI image-spec, descriptor.md#digests): ``algorithm:hex``.

sha256 is written; sha512 is read and verified.
"""

from __future__ import annotations

import sys

from ..errors import DigestMismatch, ManifestError

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import hashlib
    from typing import BinaryIO

_HEX_LEN = {"sha256": 64, "sha512": 128}
#: the grammar of a digest (image-spec); compiled only to explain a digest that is not sha256/sha512 hex
DIGEST_PATTERN = r"^([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$"
_LOWER_HEX = frozenset("0123456789abcdef")

#: content up to this size is hashed by CPython's own sha256 when OpenSSL's is not loaded yet:
#: loading ``_hashlib`` (libcrypto) costs a few ms, more than hashing a manifest or a small layer.
SMALL_CONTENT = 512 * 1024


def new_hash(algorithm: str, size: int | None = None) -> "hashlib._Hash":
    """A hash object for *algorithm*; small content (*size* known, at most :data:`SMALL_CONTENT`)
    avoids loading OpenSSL, large content gets OpenSSL's (much faster) implementation."""
    if algorithm == "sha256" and size is not None and size <= SMALL_CONTENT and "_hashlib" not in sys.modules:
        try:
            from _sha256 import sha256
        except ImportError:  # pragma: no cover - a CPython built without it
            pass
        else:
            return sha256()  # type: ignore[return-value]
    import hashlib
    return hashlib.new(algorithm)


class Digest:
    """A validated content digest such as ``sha256:e3b0…`` (immutable, ordered, hashable)."""

    __slots__ = ("algorithm", "hex")
    algorithm: str
    hex: str

    def __init__(self, algorithm: str, hex: str) -> None:  # noqa: A002 - the field's name
        object.__setattr__(self, "algorithm", algorithm)
        object.__setattr__(self, "hex", hex)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r} of Digest")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r} of Digest")

    def __reduce__(self) -> tuple[object, ...]:
        return (Digest, (self.algorithm, self.hex))

    def _key(self) -> tuple[str, str]:
        return (self.algorithm, self.hex)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self.hex == other.hex and self.algorithm == other.algorithm  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.algorithm, self.hex))

    def __lt__(self, other: "Digest") -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: "Digest") -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: "Digest") -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: "Digest") -> bool:
        if other.__class__ is not Digest:
            return NotImplemented
        return self._key() >= other._key()

    def __repr__(self) -> str:
        return f"Digest(algorithm={self.algorithm!r}, hex={self.hex!r})"

    @classmethod
    def parse(cls, text: str) -> "Digest":
        """Parse and validate *text*; raise :class:`ManifestError` when invalid."""
        if not isinstance(text, str):
            raise ManifestError(f"digest must be a string, got {type(text).__name__}")
        algo, _, hexpart = text.partition(":")
        if len(hexpart) == _HEX_LEN.get(algo) and _LOWER_HEX.issuperset(hexpart):
            return cls(algo, hexpart)          # the common case, without a regular expression
        import re
        m = re.fullmatch(DIGEST_PATTERN, text)
        if not m:
            raise ManifestError(f"invalid digest {text[:80]!r}")
        algo, hexpart = m.group(1), m.group(2)
        want = _HEX_LEN.get(algo)
        if want is None:
            raise ManifestError(f"unsupported digest algorithm {algo!r} in {text[:80]!r}")
        if len(hexpart) != want or not _LOWER_HEX.issuperset(hexpart):
            raise ManifestError(f"invalid {algo} digest {text[:80]!r}")
        return cls(algo, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> "Digest":
        """The digest of *data*."""
        h = new_hash(algorithm, len(data))
        h.update(data)
        return cls(algorithm, h.hexdigest())

    def hasher(self, size: int | None = None) -> "hashlib._Hash":
        """A fresh hash object of this digest's algorithm (*size*: of the content, when known)."""
        return new_hash(self.algorithm, size)

    def verify(self, data: bytes, size: int | None = None, what: str = "content") -> None:
        """Raise :class:`DigestMismatch` unless *data* has this digest (and *size*)."""
        if size is not None and len(data) != size:
            raise DigestMismatch(f"{what}: expected {size} bytes, got {len(data)} ({self})")
        h = new_hash(self.algorithm, len(data))
        h.update(data)
        got = h.hexdigest()
        if got != self.hex:
            raise DigestMismatch(f"{what}: digest mismatch, expected {self}, got {self.algorithm}:{got}")

    @property
    def encoded(self) -> str:
        return self.hex

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def sha256(data: bytes) -> Digest:
    """Shorthand for ``Digest.of(data)``."""
    return Digest.of(data)


class VerifyingReader:
    """Wrap a binary stream; hash and count what is read; check at EOF.

    ``read()`` raises :class:`DigestMismatch` as soon as the stream yields more
    than *size* bytes, and at end of stream when the digest or size differ,
    so a consumer never treats unverified content as complete.
    """

    def __init__(self, raw: BinaryIO, digest: Digest, size: int | None, what: str = "blob") -> None:
        self._raw = raw
        self._digest = digest
        self._size = size
        self._h = digest.hasher(size)
        self._n = 0
        self._what = what
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        if chunk:
            self._n += len(chunk)
            if self._size is not None and self._n > self._size:
                raise DigestMismatch(f"{self._what} {self._digest}: more than the announced {self._size} bytes")
            self._h.update(chunk)
            return chunk
        if n == 0:
            return chunk
        self._check()
        return chunk

    def readinto(self, b: bytearray | memoryview) -> int:  # pragma: no cover - convenience
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        if self.verified:
            return
        if self._size is not None and self._n != self._size:
            raise DigestMismatch(f"{self._what} {self._digest}: expected {self._size} bytes, got {self._n}")
        got = self._h.hexdigest()
        if got != self._digest.hex:
            raise DigestMismatch(f"{self._what}: digest mismatch, expected {self._digest}, got {self._digest.algorithm}:{got}")
        self.verified = True

    def drain(self, bufsize: int = 1 << 20) -> None:
        """Read to the end and verify."""
        while self.read(bufsize):
            pass

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> "VerifyingReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
