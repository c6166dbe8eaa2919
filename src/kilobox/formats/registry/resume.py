"""Resuming a blob download that broke mid-body, with ``Range: bytes=N-`` (RFC 9110 §14).

:class:`ResumingBody` reads one blob's body as one stream across connections.
When a connection drops (reset, end of stream before the announced length,
timeout), it asks again from the byte it stopped at — at the URL the bytes came
from (the storage a registry redirected to; the registry again if that URL
refuses, e.g. an expired presigned URL) — and accepts only ``206 Partial
Content`` with exactly ``Content-Range: bytes N-(size-1)/size``. The reader
above it (the store's :class:`~kilobox.oci.VerifyingReader` and temp file)
sees one continuous stream: the hash state carries over and nothing already
received is read again.

- ``200`` to a Range request: the server ignored it. :class:`Restart` tells
  the caller to start over (new temp file, new hash) with that body.
- ``206`` with another range or length, ``416``, anything else: the partial
  data is dropped and the download starts again from byte 0, once
  (:meth:`ResumingBody.start_over`); a second time is a one-line
  :class:`~kilobox.errors.RegistryError` naming the blob and the server's reply.
- Bounded: :data:`~.client.MAX_TRIES` breaks in a row that together moved less
  than :data:`PROGRESS` bytes end the download (one-line ``RegistryError``);
  a break right after progress is resumed at once, further breaks in a row wait
  the client's jittered backoff (:func:`~.client.backoff_delay`).
  A link that keeps dropping but keeps moving data finishes.
"""

from __future__ import annotations

from ...errors import DigestMismatch, NotFound, RegistryError
from .client import MAX_TRIES, backoff_delay

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from .client import RegistryClient, Response

PROGRESS = 1 << 20          # bytes of progress that reset the count of breaks in a row
RESTARTS = 1                # full restarts from byte 0 after a bad resume or a bad digest
_MAX_DIGITS = 19            # below 2**63: no integer a well-behaved server could send is longer
_MAX_VALUE = 200


def parse_content_range(value: str) -> tuple[int, int, int] | None:
    """``(first, last, total)`` of ``bytes FIRST-LAST/TOTAL``; None when malformed or unsatisfiable.

    Strict: the unit ``bytes``, plain ASCII digits (no sign, at most 19),
    ``first <= last < total``. ``bytes */TOTAL`` (a 416's) and a ``*`` total are None.
    """
    if not isinstance(value, str) or len(value) > _MAX_VALUE:
        return None
    unit, sep, rest = value.strip().partition(" ")
    if not sep or unit.lower() != "bytes":
        return None
    span, slash, total_s = rest.strip(" ").partition("/")
    first_s, dash, last_s = span.partition("-")
    if not slash or not dash:
        return None
    nums = []
    for s in (first_s, last_s, total_s):
        if not s or len(s) > _MAX_DIGITS or not s.isascii() or not s.isdigit():
            return None
        nums.append(int(s))
    first, last, total = nums
    if not first <= last < total:
        return None
    return first, last, total


def range_matches(value: str, offset: int, size: int) -> bool:
    """True when *value* is exactly the rest of a *size*-byte blob from *offset*."""
    return parse_content_range(value) == (offset, size - 1, size)


class Restart(Exception):
    """The download starts again from byte 0: drop what was written, reset the hash."""


class ResumingBody:
    """A blob's body as one stream, resumed with ``Range`` after a broken connection.

    ``offset`` counts the bytes returned by :meth:`read` since the last start
    from byte 0; ``resumed`` tells whether they came from more than one response.
    """

    def __init__(self, client: "RegistryClient", url: str, scopes: tuple[str, ...], size: int,
                 what: str) -> None:
        self._client = client
        self._origin = url          # the registry's blob URL
        self._url = url             # where the last bytes came from (after redirects)
        self._scopes = scopes
        self.size = size
        self.what = what
        self.offset = 0
        self.resumed = False
        self.breaks = 0             # connections lost, all in all
        self.restarts_left = RESTARTS
        self._resp: "Response | None" = None
        self._tries = 0             # breaks in a row without PROGRESS bytes of progress
        self._mark = 0              # the offset where the count last started

    # -- the stream ------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        """Up to *n* bytes of the blob (raises :class:`Restart` when it starts over from byte 0)."""
        while True:
            if self._resp is None:
                try:
                    self._resp = self._open()
                except RegistryError as e:
                    # refused, 5xx (the client retried those), or no connection before any break: as before
                    if not e.retryable or e.status is not None or not self.breaks:
                        raise
                    self._broken(e.message)     # no connection while resuming: a break like any other
                    continue
            try:
                data = self._resp.read(n)
            except RegistryError as e:
                if not e.retryable:
                    raise
                self._broken(e.message)
                continue
            if not data and n != 0 and self.offset < self.size:
                self._broken(f"the response ended after {self.offset} of {self.size} bytes")
                continue
            self.offset += len(data)
            return data

    def close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            resp.close()

    def start_over(self) -> bool:
        """Drop what was read; the next read starts from byte 0. False when no restart is left."""
        if self.restarts_left <= 0:
            return False
        self.restarts_left -= 1
        self.close()
        self.offset = 0
        self.resumed = False
        return True

    # -- requests --------------------------------------------------------------------
    def _open(self) -> "Response":
        off = self.offset
        if off == 0:
            resp = self._client.request("GET", self._origin, scopes=self._scopes, follow=True, what=self.what)
            self._check_length(resp)
            self._url = resp.url
            return resp
        resp = self._get_range(off)
        st = resp.status
        if st == 206 and range_matches(resp.header("Content-Range"), off, self.size) and \
                resp.content_length in (None, self.size - off):
            self.resumed = True
            return resp
        if st == 200:               # the server ignored the Range: start over with this body
            self._check_length(resp)
            self._url = resp.url
            self.offset = 0
            self.resumed = False
            self._resp = resp
            raise Restart(f"{self.what}: the server ignored the Range request")
        reply = f"{st} {resp.reason}".strip()
        cr = resp.header("Content-Range")
        cl = resp.header("Content-Length")
        resp.close()
        if self.start_over():
            raise Restart(f"{self.what}: bad reply to a resume")
        raise RegistryError(f"{self.what}: resuming at byte {off} of {self.size}, the server answered {reply} "
                            f"with Content-Range {cr[:80]!r} and Content-Length {cl[:24]!r} "
                            f"(expected 'bytes {off}-{self.size - 1}/{self.size}')",
                            status=st, hint="the server or a proxy on the way mishandles Range requests")

    def _get_range(self, off: int) -> "Response":
        headers = {"Range": f"bytes={off}-"}
        try:
            return self._client.request("GET", self._url, scopes=self._scopes, headers=headers,
                                        ok=(200, 206, 416), follow=True, what=self.what)
        except (RegistryError, NotFound) as e:
            if self._url == self._origin or isinstance(e, RegistryError) and e.retryable:
                raise
        self._url = self._origin    # the storage URL refused (expired?): ask the registry for a new one
        return self._client.request("GET", self._origin, scopes=self._scopes, headers=headers,
                                    ok=(200, 206, 416), follow=True, what=self.what)

    def _check_length(self, resp: "Response") -> None:
        cl = resp.content_length
        if cl is not None and cl != self.size:
            resp.close()
            raise DigestMismatch(f"{self.what}: the registry announces {cl} bytes, the descriptor {self.size}")

    def _broken(self, reason: str) -> None:
        """Count a lost connection; give up after MAX_TRIES in a row without progress, else back off."""
        self.close()
        self.breaks += 1
        if self.offset - self._mark >= PROGRESS:
            self._mark, self._tries = self.offset, 0
        self._tries += 1
        if self._tries >= MAX_TRIES:
            streak = (f", {self._tries} in a row with less than {PROGRESS >> 20} MiB between them"
                      if self.breaks > self._tries else "")
            raise RegistryError(f"{self.what}: connection lost {self.breaks} "
                                f"{'time' if self.breaks == 1 else 'times'}{streak}, the last at byte "
                                f"{self.offset} of {self.size} ({reason})", retryable=True,
                                hint="the network or the registry is unstable; run the command again")
        if self._tries > 1:                 # right after progress the link works: resume at once
            self._client.sleep(backoff_delay(self._tries - 2))


__all__ = ["PROGRESS", "RESTARTS", "Restart", "ResumingBody", "parse_content_range", "range_matches"]
