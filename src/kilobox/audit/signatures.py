"""Byte signatures that identify a program by its content, whatever its file name.

Each key is ``category:name``; a program matches when any of its byte strings occurs in
its content. Only executables are searched (see :mod:`kilobox.audit.scan`), so a library
that merely links an interpreter does not count as one.
"""

from __future__ import annotations

from functools import lru_cache

SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "shell:bash": (b"GNU bash, version",),
    "shell:dash": (b'Use "exit" to leave shell.',),
    "shell:busybox": (b"BusyBox v",),
    "shell:zsh": (b"ZSH_VERSION",),
    "shell:ksh": (b"KSH_VERSION", b"@(#)$Id: Version AJM"),
    "shell:fish": (b"FISH_VERSION",),
    "shell:sh": (b" is a shell keyword", b"is a shell builtin"),
    "interp:python": (b"Py_BytesMain", b"Py_InitializeEx"),
    "interp:perl": (b"perl_parse",),
    "interp:node": (b"_ZN4node5Start",),
    "interp:ruby": (b"ruby_run_node",),
    "interp:lua": (b"LUA_INIT",),
    "interp:php": (b"php_execute_script",),
    "interp:tclsh": (b"Tcl_Main",),
    "net:curl": (b"try 'curl --help'",),
    "net:wget": (b"GNU Wget",),
    "net:nc": (b"usage: nc [", b"Ncat: "),
    "net:socat": (b"socat by Gerhard Rieger",),
    "pkg:dpkg": (b"package management program",),
    "pkg:apt": (b"libapt-pkg.so",),
    "pkg:apk": (b"apk-tools ",),
    "pkg:rpm": (b"librpm.so",),
}


#: signatures that identify a library the program links, not the program itself
LIBRARY_SIGNATURES = frozenset({"pkg:apt", "pkg:rpm"})


@lru_cache(maxsize=1)
def _flat() -> tuple[tuple[str, bytes], ...]:
    return tuple((k, s) for k, sigs in SIGNATURES.items() for s in sigs)


@lru_cache(maxsize=1)
def max_signature_len() -> int:
    from .elf import GO_BUILDINFO_MAGIC
    return max([len(s) for _k, s in _flat()] + [len(GO_BUILDINFO_MAGIC) + 16])


def match_signatures(data: bytes) -> set[str]:
    """The signature keys found in *data*."""
    return {k for k, s in _flat() if s in data}


__all__ = ["SIGNATURES", "LIBRARY_SIGNATURES", "match_signatures", "max_signature_len"]
