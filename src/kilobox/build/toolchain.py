"""The Zig toolchain: C and Zig sources into static, stripped, size-optimised executables.

The compiler is the ``ziglang`` wheel, run as ``python -m ziglang`` (``cc`` for C,
``build-exe`` for Zig). Results are cached in ``Store().area("compile")`` under a key
made of the source bytes and names (plus the sibling headers / Zig modules / linker
scripts they may include), the flags, the target, the Zig version and
:data:`RECIPE_VERSION`, so a rebuild with the same inputs is a file lookup.

Zig's own cache (its libc build for each target takes ~40 s the first time) lives in
``$KILOBOX_ZIG_CACHE`` when set (the test suite shares one), else ``Store().area("zig")``.

::

    bin = compile_sources("c", [Path("httpd.c")], Target.from_platform(Platform.parse("linux/arm64")))
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import BuildError, UsageError
from ..oci import Platform

#: Bump when the flags kilobox adds change: invalidates every cached compile.
RECIPE_VERSION = 2

Progress = Callable[[str], None]

# Flags every compile gets. Users add theirs (cflags / ldflags) after these.
C_FLAGS = ["-Os", "-static", "-s", "-ffunction-sections", "-fdata-sections",
           "-fno-unwind-tables", "-fno-asynchronous-unwind-tables", "-fno-ident",
           "-Wl,--gc-sections", "-Wl,--build-id=none"]
C_FREESTANDING = ["-nostdlib", "-ffreestanding", "-fno-stack-protector", "-fno-pie", "-no-pie"]
ZIG_FLAGS = ["-OReleaseSmall", "-fstrip", "-fno-unwind-tables", "--gc-sections", "--build-id=none",
             "-fsingle-threaded"]
ZIG_FREESTANDING = ["-fno-stack-protector"]

# Files next to the sources that a compile may read (#include, @import, -T script).
_DEP_SUFFIXES = {".c", ".h", ".zig", ".zon", ".s", ".S", ".inc", ".ld", ".lds"}
_MAX_DEP_FILES = 2000
_MAX_ERROR_LINES = 20


@dataclass(frozen=True)
class Target:
    """A Zig target triple plus CPU, and what the resulting ELF must look like."""

    arch: str                     # zig arch: x86_64, aarch64, thumb, arm, riscv64, x86, powerpc64le, s390x
    abi: str                      # musl, musleabihf, musleabi
    cpu: str = ""                 # -mcpu value ("" = Zig default; arm/thumb "baseline" is generic+v7a)
    platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    elf_machine: str = "EM_X86_64"
    bits: int = 64
    endian: str = "little"

    @classmethod
    def from_platform(cls, platform: Platform | str) -> "Target":
        """The target for an OCI platform; :class:`BuildError` for one we cannot compile for."""
        p = Platform.parse(platform) if isinstance(platform, str) else platform
        if p.os != "linux":
            raise BuildError(f"cannot compile for {p}: only linux platforms are supported",
                             hint=f"use one of: {', '.join(SUPPORTED)}")
        key = (p.architecture, p.variant or _DEFAULT_VARIANT.get(p.architecture, ""))
        spec = _TARGETS.get(key)
        if spec is None:
            raise BuildError(f"cannot compile for platform {p}: unknown architecture/variant",
                             hint=f"use one of: {', '.join(SUPPORTED)}")
        arch, abi, cpu, machine, bits, endian = spec
        return cls(arch, abi, cpu, p, machine, bits, endian)

    @property
    def triple(self) -> str:
        """The Zig target triple, e.g. ``aarch64-linux-musl``."""
        return f"{self.arch}-linux-{self.abi}"

    def __str__(self) -> str:
        return self.triple + (f" ({self.cpu})" if self.cpu else "")


# (arch, variant) -> (zig arch, abi, cpu, ELF machine, class bits, endianness)
_TARGETS: dict[tuple[str, str], tuple[str, str, str, str, int, str]] = {
    ("amd64", ""): ("x86_64", "musl", "", "EM_X86_64", 64, "little"),
    ("arm64", "v8"): ("aarch64", "musl", "", "EM_AARCH64", 64, "little"),
    # Thumb-2 (like Debian armhf): ~25% smaller code than ARM mode on every ARMv7 core
    ("arm", "v7"): ("thumb", "musleabihf", "baseline", "EM_ARM", 32, "little"),
    ("arm", "v6"): ("arm", "musleabihf", "arm1176jzf_s", "EM_ARM", 32, "little"),
    ("riscv64", ""): ("riscv64", "musl", "", "EM_RISCV", 64, "little"),
    ("386", ""): ("x86", "musl", "", "EM_386", 32, "little"),
    ("ppc64le", ""): ("powerpc64le", "musl", "", "EM_PPC64", 64, "little"),
    ("s390x", ""): ("s390x", "musl", "", "EM_S390", 64, "big"),
}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}

#: Platforms kilobox compiles for (the first four are tested under qemu).
SUPPORTED = ("linux/amd64", "linux/arm64", "linux/arm/v7", "linux/riscv64",
             "linux/arm/v6", "linux/386", "linux/ppc64le", "linux/s390x")


def zig_version() -> str:
    """The version of the installed ``ziglang`` wheel (no subprocess)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("ziglang")
    except PackageNotFoundError:
        raise BuildError("the Zig toolchain (python package ziglang) is not installed",
                         hint=f"{sys.executable} -m pip install ziglang==0.15.2") from None


class Toolchain:
    """Compiles with ``python -m ziglang``; caches results in the kilobox store."""

    def __init__(self, cache_dir: Path | None = None, zig_cache: Path | None = None,
                 python: str | None = None) -> None:
        from ..store import Store
        self._store = Store() if cache_dir is None else None
        self.cache_dir = cache_dir if cache_dir is not None else self._store.area("compile")  # type: ignore[union-attr]
        env_zig = os.environ.get("KILOBOX_ZIG_CACHE")
        if zig_cache is not None:
            self.zig_cache = zig_cache
        elif env_zig:
            self.zig_cache = Path(env_zig)
        else:
            self.zig_cache = (self._store or Store()).area("zig")
        self.python = python or sys.executable

    # -- pure parts ------------------------------------------------------------
    def command(self, lang: str, sources: Sequence[str], target: Target, output: str, *,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (),
                freestanding: bool = False) -> list[str]:
        """The compiler command line (sources and output as given, usually relative)."""
        zig = [self.python, "-m", "ziglang"]
        if lang == "c":
            cmd = [*zig, "cc", "-target", target.triple]
            if target.cpu:
                cmd.append(f"-mcpu={target.cpu}")
            cmd += C_FLAGS + (C_FREESTANDING if freestanding else [])
            return [*cmd, *cflags, "-o", output, *sources, *ldflags]
        if lang == "zig":
            cmd = [*zig, "build-exe", "-target", target.triple]
            if target.cpu:
                cmd += ["-mcpu", target.cpu]
            cmd += ZIG_FLAGS + (ZIG_FREESTANDING if freestanding else [])
            # Zig's build-exe treats extra .c files as C sources compiled with the same target.
            return [*cmd, *cflags, *ldflags, f"-femit-bin={output}", *sources]
        raise UsageError(f"unknown language {lang!r}", hint="lang must be 'c' or 'zig'")

    def cache_key(self, lang: str, root: Path, sources: Sequence[Path], target: Target, *,
                  cflags: Sequence[str], ldflags: Sequence[str], freestanding: bool) -> str:
        """sha256 over everything that decides the output bytes."""
        h = hashlib.sha256()

        def put(*items: str | bytes) -> None:
            for it in items:
                b = it.encode() if isinstance(it, str) else it
                h.update(len(b).to_bytes(8, "big") + b)

        put("kilobox-compile", str(RECIPE_VERSION), zig_version(), lang, target.triple, target.cpu,
            "freestanding" if freestanding else "hosted", *cflags, "--", *ldflags, "--")
        for src in sources:
            put("src", src.relative_to(root).as_posix())
        for dep in _dependencies(root, sources):
            put("file", dep.relative_to(root).as_posix(), _read(dep))
        return h.hexdigest()

    # -- the compile -------------------------------------------------------------
    def compile(self, lang: str, sources: Sequence[Path | str], target: Target, *,
                cflags: Sequence[str] = (), ldflags: Sequence[str] = (), out_dir: Path | None = None,
                freestanding: bool = False, progress: Progress | None = None,
                name: str | None = None, base_dir: Path | None = None) -> Path:
        """Compile *sources*; the binary's path (in the compile cache, or copied to *out_dir*).

        The compiler runs in *base_dir* (the project directory: relative paths in the flags,
        such as ``-Iinclude`` or ``-Wl,-T,app.ld``, are relative to it), else in the sources'
        common directory.
        """
        if lang not in ("c", "zig"):
            raise UsageError(f"unknown language {lang!r}", hint="lang must be 'c' or 'zig'")
        if not sources:
            raise BuildError("nothing to compile: no sources given", hint="list them in kilobox.toml: sources = [...]")
        srcs = [Path(s).resolve() for s in sources]
        for s in srcs:
            if not s.is_file():
                raise BuildError(f"source file {s} does not exist", hint="check `sources` in kilobox.toml")
        root = Path(os.path.commonpath([s.parent for s in srcs]))
        if base_dir is not None:
            base = Path(base_dir).resolve()
            if not all(_inside(s, base) for s in srcs):
                raise BuildError(f"sources must lie inside the project directory {base}",
                                 hint="list sources relative to the directory of kilobox.toml")
            root = base
        name = name or srcs[0].stem
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name):
            raise UsageError(f"invalid binary name {name!r}")
        key = self.cache_key(lang, root, srcs, target, cflags=cflags, ldflags=ldflags, freestanding=freestanding)
        entry = self.cache_dir / key[:2] / key
        binary = entry / name
        if not binary.is_file():
            self._compile_into(entry, name, lang, root, srcs, target, cflags=cflags, ldflags=ldflags,
                               freestanding=freestanding, progress=progress)
        elif progress:
            progress(f"{name} for {target.platform}: cached")
        if out_dir is None:
            return binary
        out_dir.mkdir(parents=True, exist_ok=True)
        dest = out_dir / name
        shutil.copyfile(binary, dest)
        os.chmod(dest, 0o755)
        return dest

    def _compile_into(self, entry: Path, name: str, lang: str, root: Path, srcs: list[Path], target: Target,
                      *, cflags: Sequence[str], ldflags: Sequence[str], freestanding: bool,
                      progress: Progress | None) -> None:
        marker = self.zig_cache / f"kilobox-libc-{target.triple}-{target.cpu or 'baseline'}"
        needs_libc = lang == "c" and not freestanding or lang == "zig" and any(f in ("-lc", "-lc++") for f in ldflags)
        if progress:
            progress(f"compiling {name} for {target.platform} ({target.triple})")
        entry.parent.mkdir(parents=True, exist_ok=True)
        self.zig_cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(_mkdtemp(entry.parent, key=entry.name))
        try:
            rel = [s.relative_to(root).as_posix() for s in srcs]
            out = str(tmp / name)
            cmd = self.command(lang, rel, target, out, cflags=cflags, ldflags=ldflags, freestanding=freestanding)
            env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(self.zig_cache), ZIG_LOCAL_CACHE_DIR=str(self.zig_cache))
            env.pop("ZIG_LIB_DIR", None)
            slow_note = None
            if progress and needs_libc and not marker.exists():
                slow_note = f"compiling libc for {target.arch} (first time only, ~40 s)..."
            rc, output = _run(cmd, root, env, progress if slow_note else None, slow_note)
            if rc != 0 or not Path(out).is_file():
                raise _compile_error(output, rel, target)
            os.chmod(out, 0o755)
            with contextlib.suppress(OSError):
                os.rename(tmp, entry)  # a concurrent compile may have won: same bytes, keep theirs
            if needs_libc:
                with contextlib.suppress(OSError):
                    marker.touch()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def compile_sources(lang: str, sources: Sequence[Path | str], target: Target, *,
                    cflags: Sequence[str] = (), ldflags: Sequence[str] = (), out_dir: Path | None = None,
                    freestanding: bool = False, progress: Progress | None = None,
                    base_dir: Path | None = None) -> Path:
    """Compile with the default :class:`Toolchain`; returns the binary's path."""
    return Toolchain().compile(lang, sources, target, cflags=list(cflags), ldflags=list(ldflags),
                               out_dir=out_dir, freestanding=freestanding, progress=progress,
                               base_dir=base_dir)


# -- helpers ---------------------------------------------------------------------
def _dependencies(root: Path, sources: Sequence[Path]) -> list[Path]:
    """Source-like files under *root* (sorted), which #include / @import / -T may read."""
    found: set[Path] = set(sources)
    for d in (root,):
        for dirpath, dirnames, files in os.walk(d):
            dirnames[:] = sorted(n for n in dirnames if not n.startswith((".", "zig-")) and n != "zig-out")
            for fn in files:
                if Path(fn).suffix in _DEP_SUFFIXES:
                    found.add(Path(dirpath) / fn)
                    if len(found) > _MAX_DEP_FILES:
                        raise BuildError(f"too many source files under {d} (more than {_MAX_DEP_FILES})",
                                         hint="keep each project's sources in their own directory")
    return sorted(p for p in found if _inside(p, root))


def _inside(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


def _read(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except OSError as e:
        raise BuildError(f"cannot read {p}: {e.strerror}") from None


def _mkdtemp(parent: Path, key: str) -> str:
    import tempfile
    return tempfile.mkdtemp(dir=parent, prefix=f".{key[:16]}.")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], progress: Progress | None,
         slow_note: str | None) -> tuple[int, str]:
    """Run the compiler; after 1.5 s without an answer, tell *progress* why it is slow."""
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        raise BuildError(f"cannot run the Zig compiler ({cmd[0]} -m ziglang): {e.strerror}",
                         hint="install ziglang==0.15.2 into this Python") from None
    try:
        try:
            out, _ = proc.communicate(timeout=1.5 if progress else None)
        except subprocess.TimeoutExpired:
            if progress and slow_note:
                progress(slow_note)
            out, _ = proc.communicate()
    finally:
        if proc.poll() is None:  # interrupted: do not leave the compiler running
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(errors="replace")


def _compile_error(output: str, rel_sources: Sequence[str], target: Target) -> BuildError:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    culprit = rel_sources[0]
    for ln in lines:
        m = re.match(r"([^:\s]+):\d+:\d+: error", ln)
        if m:
            culprit = m.group(1)
            break
    shown = "\n".join(lines[:_MAX_ERROR_LINES]) or "(the compiler printed nothing)"
    more = f"\n... ({len(lines) - _MAX_ERROR_LINES} more lines)" if len(lines) > _MAX_ERROR_LINES else ""
    return BuildError(f"compile error in {culprit} for {target.platform}:\n{shown}{more}",
                      hint="fix the source (the compiler's message is above)")


__all__ = ["Target", "Toolchain", "compile_sources", "zig_version", "SUPPORTED", "RECIPE_VERSION",
           "C_FLAGS", "ZIG_FLAGS"]
