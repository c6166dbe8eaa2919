"""One streaming pass over an image: the flattened file view, with content facts.

Layers are read **top layer first**. A path met in an upper layer (or removed by a
whiteout there) hides the same path and everything under it in lower layers, so each
entry is classified the moment it is read: *visible* (analysed: hashes, ELF facts,
content signatures) or *shadowed* (counted as wasted bytes, content skipped). Each
layer is read exactly once, no file content is held in memory beyond bounded buffers,
and the per-entry metadata kept is small (a 100,000-entry layer costs a few tens of MB).

The result, :class:`Scan`, feeds every audit function (findings, sizes, SBOM, diff).
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, ContextManager, Iterable

from ..errors import LayerError
from . import elf as elfmod
from ._members import Member, iter_members
from .content import decode_caps, scan_secrets
from .signatures import match_signatures, max_signature_len

CHUNK = 1 << 20
HEAD = 64 << 10
ELF_SPOOL_MEMORY = 32 << 20      # ELF files up to this size are parsed from memory
ELF_MAX = 1 << 30                # larger ELF files are not parsed (hash only)
SIGNATURE_MAX = 256 << 20        # signature search stops after this many bytes of one file
TEXT_SCAN_MAX = 1 << 20          # text files up to this size are checked for secrets
CAPTURE_MAX = 32 << 20           # a captured file (dpkg status...) larger than this is skipped
CAPTURE_TOTAL = 96 << 20

# files whose content the package/user readers need (kept in memory, bounded)
_CAPTURE_RE = re.compile(
    r"^/(var/lib/dpkg/status|var/lib/dpkg/status\.d/[^/]+|lib/apk/db/installed|etc/os-release|"
    r"usr/lib/os-release|etc/passwd|etc/group|etc/ld\.so\.conf|etc/ld\.so\.conf\.d/[^/]+|"
    r".+/(site|dist)-packages/[^/]+\.(dist-info/METADATA|egg-info/PKG-INFO|egg-info))$")

@dataclass(slots=True)
class Entry:
    """One visible path of the flattened image."""

    path: str                    # absolute: "/usr/bin/sh"
    kind: str                    # file dir symlink hardlink char block fifo
    size: int
    mode: int                    # permission bits with setuid/setgid/sticky (0o7777)
    uid: int
    gid: int
    mtime: int
    layer: int                   # index of the layer it comes from (0 = bottom)
    linkname: str = ""
    sha256: str = ""
    sha1: str = ""
    content: str = ""            # elf | script | text | data | empty
    shebang: str = ""
    elf: elfmod.ElfFacts | None = None
    signatures: tuple[str, ...] = ()   # content signatures: shell:bash, interp:perl, net:curl…
    secrets: tuple[str, ...] = ()      # secret kinds seen in the content
    caps: str = ""               # decoded file capabilities, e.g. "cap_net_raw+ep"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_file(self) -> bool:
        return self.kind == "file"


@dataclass(slots=True)
class Shadowed:
    """Bytes shipped in a layer but not visible in the final image."""

    path: str
    layer: int
    size: int
    reason: str                  # overwritten | deleted


@dataclass
class LayerStat:
    index: int
    digest: str = ""
    media_type: str = ""
    compressed_size: int = 0
    entries: int = 0
    files: int = 0
    file_bytes: int = 0          # bytes of regular files shipped in this layer
    visible_bytes: int = 0       # of those, still visible in the final image
    whiteouts: int = 0
    created_by: str = ""

    @property
    def wasted_bytes(self) -> int:
        return self.file_bytes - self.visible_bytes


@dataclass
class LayerInput:
    """How to read one layer: *open* returns a context manager over its uncompressed tar."""

    open: Callable[[], ContextManager[BinaryIO]]
    digest: str = ""
    media_type: str = ""
    compressed_size: int = 0
    created_by: str = ""


@dataclass
class ScanOptions:
    content: bool = True                   # sniff content (ELF, scripts, secrets, packages)
    signatures: bool = True                # search executables for program signatures (shells…)
    hashes: tuple[str, ...] = ("sha256",)  # any of sha256, sha1


@dataclass
class Scan:
    """The flattened view of one image, and where its bytes went."""

    name: str
    digest: str = ""
    config: dict = field(default_factory=dict)       # the image config JSON (whole)
    layers: list[LayerStat] = field(default_factory=list)
    entries: dict[str, Entry] = field(default_factory=dict)   # visible, by path
    shadowed: list[Shadowed] = field(default_factory=list)
    captured: dict[str, bytes] = field(default_factory=dict)  # small files the readers need
    warnings: list[str] = field(default_factory=list)
    options: ScanOptions = field(default_factory=ScanOptions)

    @property
    def files(self) -> Iterable[Entry]:
        return (e for e in self.entries.values() if e.kind == "file")

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries.values() if e.kind == "file")

    @property
    def compressed_size(self) -> int:
        return sum(layer.compressed_size for layer in self.layers)

    @property
    def runtime_config(self) -> dict:
        c = self.config.get("config") if isinstance(self.config, dict) else None
        return c if isinstance(c, dict) else {}

    def resolve(self, path: str, max_hops: int = 40) -> Entry | None:
        """The entry *path* leads to after following symlinks (and hardlinks), or None."""
        seen = 0
        cur = path
        while seen < max_hops:
            e = self.entries.get(cur) or self._resolve_parents(cur)
            if e is None:
                return None
            if e.kind == "symlink":
                cur = _join(e.path.rsplit("/", 1)[0] or "/", e.linkname)
            elif e.kind == "hardlink":
                cur = "/" + e.linkname.lstrip("/")
            else:
                return e
            seen += 1
        return None

    def _resolve_parents(self, path: str) -> Entry | None:
        """Look *path* up when one of its parent directories is a symlink (/bin -> usr/bin)."""
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            parent = "/" + "/".join(parts[:i])
            e = self.entries.get(parent)
            if e is not None and e.kind == "symlink":
                target = _join(parent.rsplit("/", 1)[0] or "/", e.linkname)
                rest = "/".join(parts[i:])
                alt = target.rstrip("/") + "/" + rest
                return self.entries.get(alt) if alt != path else None
        return None


def _join(base: str, link: str) -> str:
    """Resolve *link* relative to directory *base*, clamped at the root (as a container sees it)."""
    parts = [] if link.startswith("/") else [p for p in base.split("/") if p]
    for p in link.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if parts:
                parts.pop()
        else:
            parts.append(p)
    return "/" + "/".join(parts)


# --------------------------------------------------------------------------- the pass

def scan_layers(layers: list[LayerInput], *, name: str = "", digest: str = "", config: dict | None = None,
                options: ScanOptions | None = None) -> Scan:
    """Scan *layers* (bottom first, as in a manifest) into a :class:`Scan`."""
    opts = options or ScanOptions()
    result = Scan(name=name, digest=digest, config=config or {}, options=opts,
                  layers=[LayerStat(i, li.digest, li.media_type, li.compressed_size, created_by=li.created_by)
                          for i, li in enumerate(layers)])
    state = _State(result, opts)
    for index in range(len(layers) - 1, -1, -1):
        where = f"{name or 'image'} layer {index}" + (f" ({layers[index].digest})" if layers[index].digest else "")
        with layers[index].open() as stream:
            state.layer(index, iter_members(stream, where), where)
    state.finish()
    return result


class _State:
    """Book-keeping of the top-down pass."""

    def __init__(self, result: Scan, opts: ScanOptions) -> None:
        self.r = result
        self.opts = opts
        self.whited: dict[str, int] = {}     # path → layer whose whiteout removes it below
        self.opaque: dict[str, int] = {}     # "/dir/" → layer whose opaque marker hides lower children
        self.captured_total = 0

    def _hidden_by(self, path: str, index: int) -> str | None:
        """Why a layer-*index* entry at *path* is not visible, or None when it is."""
        entries = self.r.entries
        prev = entries.get(path)
        if prev is not None and prev.layer > index:
            return "overwritten"
        if self.whited.get(path, -1) > index:
            return "deleted"
        i = len(path)
        while i > 0:
            i = path.rfind("/", 0, i)
            if i < 0:
                break
            if self.opaque.get(path[:i + 1], -1) > index:
                return "deleted"
            if i == 0:
                break
            anc = path[:i]
            if self.whited.get(anc, -1) > index:
                return "deleted"
            e = entries.get(anc)
            if e is not None and e.kind != "dir" and e.layer > index:
                return "overwritten"
        return None

    def layer(self, index: int, members: Iterable[Member], where: str) -> None:
        stat = self.r.layers[index]
        for m in members:
            stat.entries += 1
            path = "/" + m.name.lstrip("/") if m.name not in (".", "") else "/"
            base = path.rsplit("/", 1)[-1]
            if base.startswith(".wh."):
                stat.whiteouts += 1
                parent = path.rsplit("/", 1)[0]
                if base == ".wh..wh..opq":
                    self.opaque.setdefault(parent + "/", index)
                    continue
                target = parent + "/" + base[4:]
                if self._hidden_by(target, index) is None:
                    self.whited.setdefault(target, index)
                continue
            if m.kind == "file":
                stat.files += 1
                stat.file_bytes += m.size
            why = self._hidden_by(path, index)
            if why is None:
                prev = self.r.entries.get(path)
                if prev is not None and prev.layer == index and prev.kind == "file":
                    # the same path twice in one layer: the later one wins
                    self.r.shadowed.append(Shadowed(path, index, prev.size, "overwritten"))
                    stat.visible_bytes -= prev.size
            else:
                if m.kind == "file" and m.size:
                    self.r.shadowed.append(Shadowed(path, index, m.size, why))
                continue
            self.r.entries[path] = self._entry(m, path, index, where)
            if m.kind == "file":
                stat.visible_bytes += m.size

    def _entry(self, m: Member, path: str, index: int, where: str) -> Entry:
        e = Entry(path=path, kind=m.kind, size=m.size if m.kind == "file" else 0, mode=m.mode & 0o7777,
                  uid=m.uid, gid=m.gid, mtime=int(m.mtime), layer=index, linkname=m.linkname)
        caps = (m.xattrs or {}).get("security.capability")
        if caps is not None:
            e.caps = decode_caps(caps)
        if m.kind == "file" and (self.opts.content or self.opts.hashes):
            self._content(m, e)
        elif m.kind == "hardlink":
            target = self.r.entries.get("/" + m.linkname.lstrip("/"))
            if target is not None and target.kind == "file":
                _copy_content(target, e)
        return e

    def _want_capture(self, path: str, size: int) -> bool:
        return (self.opts.content and size <= CAPTURE_MAX and self.captured_total + size <= CAPTURE_TOTAL
                and _CAPTURE_RE.match(path) is not None)

    def _content(self, m: Member, e: Entry) -> None:
        hashers = [hashlib.new(h) for h in self.opts.hashes]
        capture = bytearray() if self._want_capture(e.path, e.size) else None
        read = 0
        head = m.read(min(HEAD, e.size)) if e.size else b""
        if not head:
            e.content = "empty"
            self._finish_hash(e, hashers)
            if capture is not None:
                self.r.captured[e.path] = b""
            return
        content = _sniff(head) if self.opts.content else ""
        e.content = content
        if content == "script":
            e.shebang = head[2:256].split(b"\n", 1)[0].strip().decode("utf-8", "replace")
        spool = sig_tail = None
        sigs: set[str] = set()
        go_off = -1
        hinfo = elfmod.header_info(head) if content == "elf" else None
        exec_candidate = hinfo is not None and (hinfo[2] == "exec" or hinfo[3] or bool(e.mode & 0o111))
        if hinfo is not None and e.size <= ELF_MAX:
            spool = _Spool(e.size)
        if exec_candidate and (spool is None or not spool.in_memory):
            sig_tail = b""   # too big to hold: search the stream chunk by chunk
        text = bytearray() if content in ("text", "script") and e.size <= TEXT_SCAN_MAX else None
        need_rest = bool(hashers) or spool is not None or sig_tail is not None or text is not None or capture is not None
        overlap = max_signature_len()
        chunk = head
        while chunk:
            for h in hashers:
                h.update(chunk)
            if spool is not None:
                spool.write(chunk)
            if sig_tail is not None and read < SIGNATURE_MAX:
                window = sig_tail + chunk
                if self.opts.signatures:
                    sigs |= match_signatures(window)
                if go_off < 0:
                    j = window.find(elfmod.GO_BUILDINFO_MAGIC)
                    if j >= 0:
                        go_off = read - len(sig_tail) + j
                sig_tail = window[-overlap:]
            if text is not None:
                text += chunk
            if capture is not None:
                capture += chunk
            read += len(chunk)
            if not need_rest:
                break
            chunk = m.read(CHUNK)
        if need_rest and read != e.size:
            raise LayerError(f"{e.path}: short read ({read} of {e.size} bytes)", hint="the layer is truncated")
        self._finish_hash(e, hashers)
        if spool is not None:
            try:
                if exec_candidate and spool.in_memory:
                    go_off = spool.find(elfmod.GO_BUILDINFO_MAGIC)
                e.elf = elfmod.parse_elf(spool, go_off)
                if exec_candidate and spool.in_memory and self.opts.signatures:
                    # strings live in .rodata/.dynstr/.data: search those when the section table says where
                    for off, size in e.elf.string_regions or [(0, spool.size)]:
                        sigs |= match_signatures(spool.pread(off, min(size, SIGNATURE_MAX)))
            finally:
                spool.close()
        e.signatures = tuple(sorted(sigs))
        if text is not None:
            e.secrets = scan_secrets(bytes(text))
        if capture is not None:
            self.captured_total += len(capture)
            self.r.captured[e.path] = bytes(capture)

    @staticmethod
    def _finish_hash(e: Entry, hashers: list) -> None:
        for h in hashers:
            setattr(e, h.name, h.hexdigest())

    def finish(self) -> None:
        # hardlinks whose target came from a lower layer (read later in the top-down pass)
        for e in self.r.entries.values():
            if e.kind == "hardlink" and not e.content:
                target = self.r.entries.get("/" + e.linkname.lstrip("/"))
                if target is not None and target.kind == "file":
                    _copy_content(target, e)


def _copy_content(target: Entry, e: Entry) -> None:
    e.sha256, e.sha1, e.content, e.shebang = target.sha256, target.sha1, target.content, target.shebang
    e.elf, e.signatures, e.secrets = target.elf, target.signatures, target.secrets
    if not e.caps:
        e.caps = target.caps


def _sniff(head: bytes) -> str:
    if head.startswith(elfmod.ELF_MAGIC):
        return "elf"
    if head.startswith(b"#!"):
        return "script"
    return "data" if b"\0" in head[:8192] else "text"


class _Spool:
    """A write-once buffer with ``pread``: memory up to a limit, then a temporary file."""

    def __init__(self, size: int) -> None:
        self.size = 0
        self._mem: bytearray | None = bytearray() if size <= ELF_SPOOL_MEMORY else None
        self._file = None if self._mem is not None else tempfile.TemporaryFile(prefix="kilobox-audit-")

    def write(self, b: bytes) -> None:
        if self._mem is not None:
            self._mem += b
        else:
            self._file.write(b)
        self.size += len(b)

    @property
    def in_memory(self) -> bool:
        return self._mem is not None

    def find(self, needle: bytes) -> int:
        return self._mem.find(needle) if self._mem is not None else -1

    def pread(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or offset >= self.size:
            return b""
        n = min(n, self.size - offset)
        if self._mem is not None:
            return bytes(self._mem[offset:offset + n])
        self._file.seek(offset)
        return self._file.read(n)

    def close(self) -> None:
        self._mem = None
        if self._file is not None:
            self._file.close()


__all__ = ["Entry", "Shadowed", "LayerStat", "LayerInput", "ScanOptions", "Scan", "scan_layers",
           "decode_caps", "scan_secrets"]
