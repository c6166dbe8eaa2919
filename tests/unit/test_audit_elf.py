"""The audit's bounded ELF reader: interpreters, libraries, Go build info, Rust cargo-auditable data."""

from __future__ import annotations

import json
import zlib

from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.audit.elf import BytesReader, go_modules, header_info, parse_elf
from tests.fixtures.toolchain import make_elf

START = b"0w\xaf\x0c\x92t\x08\x02A\xe1\xc1\x07\xe6\xd6\x18\xe6"
END = b"\xf92C1\x86\x18 r\x00\x82B\x10A\x16\xd8\xf2"
MODINFO = ("path\texample.com/app\nmod\texample.com/app\tv1.2.3\th1:abc=\n"
           "dep\tgolang.org/x/net\tv0.17.0\th1:xyz=\ndep\tgithub.com/old/x\tv1.0.0\n"
           "=>\tgithub.com/new/x\tv1.1.0\th1:r=\nbuild\tGOOS=linux\n")


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def go_blob(version: str = "go1.22.1", modinfo: str = MODINFO) -> bytes:
    mod = START + modinfo.encode() + END
    return (b"\xff Go buildinf:" + bytes([8, 2]) + b"\0" * 16 + _uvarint(len(version)) + version.encode()
            + _uvarint(len(mod)) + mod)


def test_static_and_dynamic():
    f = parse_elf(BytesReader(make_elf()))
    assert (f.bits, f.machine, f.etype, f.interp, f.needed) == (64, "amd64", "exec", "", [])
    assert f.executable and not f.dynamic
    d = parse_elf(BytesReader(make_elf(interp="/lib/ld-musl-x86_64.so.1", needed=("libc.musl.so.1", "libz.so.1"))))
    assert d.interp == "/lib/ld-musl-x86_64.so.1" and d.needed == ["libc.musl.so.1", "libz.so.1"] and d.dynamic


def test_shared_library_is_not_an_executable():
    f = parse_elf(BytesReader(make_elf(etype=3, needed=("libc.so.6",))))
    assert f.etype == "dyn" and not f.executable


def test_32bit_big_endian():
    f = parse_elf(BytesReader(make_elf(bits=32, endian="big", machine=8, interp="/lib/ld.so.1", needed=("libc.so.6",))))
    assert (f.bits, f.machine, f.interp, f.needed) == (32, "mips", "/lib/ld.so.1", ["libc.so.6"])


def test_go_buildinfo():
    data = make_elf(code=b"\xc3" * 8 + go_blob())
    off = data.find(b"\xff Go buildinf:")
    f = parse_elf(BytesReader(data), off)
    assert f.go_version == "go1.22.1"
    main, deps = go_modules(f.go_modinfo)
    assert main == {"path": "example.com/app", "version": "v1.2.3", "sum": "h1:abc="}
    assert [(d["path"], d["version"]) for d in deps] == [("golang.org/x/net", "v0.17.0"), ("github.com/new/x", "v1.1.0")]


def test_rust_cargo_auditable():
    doc = {"packages": [{"name": "app", "version": "0.1.0", "source": "local", "root": True},
                        {"name": "serde", "version": "1.0.190", "source": "crates.io", "dependencies": []},
                        {"name": 5, "version": "bad"}]}
    data = make_elf(sections={".text": b"\xc3" * 8, ".dep-v0": zlib.compress(json.dumps(doc).encode())})
    f = parse_elf(BytesReader(data))
    assert [(d["name"], d["version"], d["root"]) for d in f.rust_deps] == [("app", "0.1.0", True), ("serde", "1.0.190", False)]


def test_rust_section_bomb_and_garbage_ignored():
    bomb = zlib.compress(b"{" + b" " * (64 << 20))
    deep = zlib.compress(b'{"packages":' + b"[" * 100_000)       # json's recursion, not a ValueError
    odd = zlib.compress(b'{"packages": {"name": "x"}}')
    for blob in (bomb, deep, odd, b"not zlib", zlib.compress(b"[1,2]"), zlib.compress(b"\xff\xfe")):
        f = parse_elf(BytesReader(make_elf(sections={".dep-v0": blob})))
        assert f.rust_deps == []


def test_not_elf_and_truncated():
    assert header_info(b"#!/bin/sh\n" + b"\0" * 60) is None
    f = parse_elf(BytesReader(b"\x7fELF\x02\x01"))
    assert f.truncated
    data = make_elf(interp="/lib/ld.so", needed=("liba.so",))
    g = parse_elf(BytesReader(data[:100]))
    assert g.needed == []


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=2048), st.integers(min_value=0, max_value=4000))
def test_fuzz_mutated_elf_never_raises(noise, at):
    base = bytearray(make_elf(interp="/lib/ld.so", needed=("liba.so", "libb.so"),
                              sections={".dep-v0": zlib.compress(b'{"packages":[]}')}, code=go_blob()))
    at %= len(base)
    base[at:at + len(noise)] = noise
    f = parse_elf(BytesReader(bytes(base)), bytes(base).find(b"\xff Go buildinf:"))
    assert isinstance(f.needed, list) and len(f.needed) <= 512


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=600))
def test_fuzz_random_bytes(data):
    parse_elf(BytesReader(b"\x7fELF" + data), 0)
