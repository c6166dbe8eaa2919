"""Shared-library resolution inside a scanned image (what ``ld.so`` would load)."""

from __future__ import annotations

from .scan import Entry, Scan

_TRIPLETS = ("x86_64-linux-gnu", "aarch64-linux-gnu", "arm-linux-gnueabihf", "i386-linux-gnu",
             "riscv64-linux-gnu", "powerpc64le-linux-gnu", "s390x-linux-gnu")
DEFAULT_DIRS = tuple(f"{p}/{t}" for t in _TRIPLETS for p in ("/lib", "/usr/lib")) + (
    "/lib64", "/usr/lib64", "/lib", "/usr/lib", "/usr/local/lib", "/lib32", "/usr/lib32")
MAX_CLOSURE = 2000


class Resolver:
    """Finds libraries by soname in *scan*, following symlinks; caches per soname and search path."""

    def __init__(self, scan: Scan) -> None:
        self.scan = scan
        self._cache: dict[tuple[str, tuple[str, ...]], Entry | None] = {}
        self._closures: dict[str, dict[str, str | None]] = {}
        self.extra_dirs = tuple(self._ld_so_conf())

    def _ld_so_conf(self) -> list[str]:
        out = []
        for path, raw in self.scan.captured.items():
            if path.startswith("/etc/ld.so.conf"):
                for line in raw.decode("utf-8", "replace").splitlines()[:1000]:
                    line = line.strip()
                    if line.startswith("/"):
                        out.append(line.rstrip("/"))
        return out

    def find(self, soname: str, search: tuple[str, ...] = ()) -> Entry | None:
        key = (soname, search)
        if key in self._cache:
            return self._cache[key]
        hit = None
        if "/" in soname:
            hit = self.scan.resolve(soname if soname.startswith("/") else "/" + soname)
        else:
            for d in search + self.extra_dirs + DEFAULT_DIRS:
                hit = self.scan.resolve(f"{d}/{soname}")
                if hit is not None and hit.kind == "file":
                    break
                hit = None
        self._cache[key] = hit
        return hit

    def closure(self, e: Entry) -> dict[str, str | None]:
        """soname → resolved path (None when missing), for *e*'s whole dependency tree."""
        if e.path in self._closures:
            return self._closures[e.path]
        out: dict[str, str | None] = {}
        todo = [(e, n) for n in (e.elf.needed if e.elf else [])]
        if e.elf is not None and e.elf.interp:
            hit = self.scan.resolve(e.elf.interp)
            out[e.elf.interp] = hit.path if hit is not None else None
        while todo and len(out) < MAX_CLOSURE:
            owner, name = todo.pop()
            if name in out:
                continue
            search = tuple(self._expand(p, owner) for p in (owner.elf.runpath if owner.elf else []))
            hit = self.find(name, search)
            out[name] = hit.path if hit is not None else None
            if hit is not None and hit.elf is not None:
                todo.extend((hit, n) for n in hit.elf.needed if n not in out)
        self._closures[e.path] = out
        return out

    @staticmethod
    def _expand(p: str, owner: Entry) -> str:
        origin = owner.path.rsplit("/", 1)[0] or "/"
        return p.replace("${ORIGIN}", origin).replace("$ORIGIN", origin).rstrip("/")


__all__ = ["Resolver", "DEFAULT_DIRS"]
