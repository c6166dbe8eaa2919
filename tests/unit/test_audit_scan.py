"""The streaming pass: flattened view, whiteouts, wasted bytes, content facts, hostile layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile

import pytest

from kilobox.audit.scan import ScanOptions, decode_caps, scan_layers, scan_secrets
from kilobox.errors import LayerError
from tests.fixtures.debian import layer_input, scan_of, static_elf, tar_of


def test_flattened_view_whiteouts_opaque_and_overwrites():
    base = tar_of({"etc": ("dir", None, 0o755), "etc/a": b"A" * 100, "etc/b": b"B" * 200,
                   "var": ("dir", None, 0o755), "var/cache": ("dir", None, 0o755), "var/cache/x": b"X" * 300,
                   "var/cache/sub": ("dir", None, 0o755), "var/cache/sub/y": b"Y" * 400,
                   "opt": ("dir", None, 0o755), "opt/big": b"Z" * 1000})
    top = tar_of({"etc/a": b"a2", "etc/.wh.b": b"", "var/cache/.wh..wh..opq": b"", "var/cache/new": b"N",
                  "opt": b"now a file"})
    s = scan_of(base, top)
    assert s.entries["/etc/a"].size == 2 and s.entries["/etc/a"].layer == 1
    assert "/etc/b" not in s.entries
    assert "/var/cache/x" not in s.entries and "/var/cache/sub/y" not in s.entries and "/var/cache/sub" not in s.entries
    assert "/var/cache/new" in s.entries and s.entries["/var/cache"].kind == "dir"
    assert s.entries["/opt"].kind == "file" and "/opt/big" not in s.entries
    wasted = {w.path: (w.size, w.reason) for w in s.shadowed}
    assert wasted == {"/etc/a": (100, "overwritten"), "/etc/b": (200, "deleted"), "/var/cache/x": (300, "deleted"),
                      "/var/cache/sub/y": (400, "deleted"), "/opt/big": (1000, "overwritten")}
    assert s.layers[0].file_bytes == 2000 and s.layers[0].visible_bytes == 0
    assert s.layers[0].wasted_bytes == 2000 and s.layers[1].whiteouts == 2


def test_whiteout_applies_only_to_lower_layers_and_readd_wins():
    l0 = tar_of({"a": b"old"})
    l1 = tar_of({".wh.a": b""})
    l2 = tar_of({"a": b"new!"})
    s = scan_of(l0, l1, l2)
    assert s.entries["/a"].size == 4 and s.entries["/a"].layer == 2
    assert [(w.path, w.layer) for w in s.shadowed] == [("/a", 0)]


def test_duplicate_path_in_one_layer_later_wins():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for data in (b"first-version", b"2nd"):
            ti = tarfile.TarInfo("f")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    s = scan_of(buf.getvalue())
    assert s.entries["/f"].size == 3 and s.entries["/f"].sha256 == hashlib.sha256(b"2nd").hexdigest()
    assert [(w.path, w.size) for w in s.shadowed] == [("/f", 13)]
    assert s.layers[0].visible_bytes == 3


def test_hashes_symlinks_hardlinks_and_parent_symlinks():
    elf = static_elf()
    t = tar_of({"usr": ("dir", None, 0o755), "usr/bin": ("dir", None, 0o755), "usr/bin/app": ("file", elf, 0o755),
                "usr/bin/app2": ("hardlink", "usr/bin/app", 0o755), "bin": ("symlink", "usr/bin", 0o777),
                "usr/bin/sh": ("symlink", "../bin/app", 0o777)})
    s = scan_of(t, hashes=("sha256", "sha1"))
    app = s.entries["/usr/bin/app"]
    assert app.sha256 == hashlib.sha256(elf).hexdigest() and app.sha1 == hashlib.sha1(elf).hexdigest()
    assert app.content == "elf" and app.elf is not None and app.elf.executable and not app.elf.dynamic
    assert s.entries["/usr/bin/app2"].sha256 == app.sha256 and s.entries["/usr/bin/app2"].elf is not None
    assert s.resolve("/bin/app") is app
    assert s.resolve("/bin/sh") is app          # via /bin -> usr/bin, then ../bin/app
    assert s.resolve("/nope") is None


def test_symlink_loops_end():
    t = tar_of({"a": ("symlink", "b", 0o777), "b": ("symlink", "a", 0o777), "c": ("symlink", "/../../c", 0o777)})
    s = scan_of(t)
    assert s.resolve("/a") is None and s.resolve("/c") is None


def test_capabilities_from_pax_xattr():
    raw = bytes.fromhex("01000002" "00200000" "00000000" "00000000" "00000000")   # v2, effective, cap_net_raw
    t = tar_of({"ping": ("file", b"x", 0o755, 0, {"SCHILY.xattr.security.capability": raw.decode("latin-1")})})
    s = scan_of(t)
    assert s.entries["/ping"].caps == "cap_net_raw+ep"


@pytest.mark.parametrize("raw,text", [
    (b"", "invalid"), (b"\xff" * 12, "invalid"),
    (bytes.fromhex("00000002" "00040000" "00000000" "00000000" "00000000"), "cap_net_bind_service+p"),
    (bytes.fromhex("01000003" "ffffffff" "00000000" "ffffffff" "00000000" "00000000"), None),
])
def test_decode_caps(raw, text):
    out = decode_caps(raw)
    if text is not None:
        assert out == text
    else:
        assert out.count("cap_") == 64 and "cap_sys_admin+ep" in out


def test_content_sniffing_and_secrets():
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    t = tar_of({"s.sh": ("file", b"#!/bin/sh\necho hi\n", 0o755), "k": key, "d": b"\0\1\2", "e": b"",
                "aws": b"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"})
    s = scan_of(t)
    assert s.entries["/s.sh"].content == "script" and s.entries["/s.sh"].shebang == "/bin/sh"
    assert s.entries["/k"].secrets == ("private-key",)
    assert s.entries["/aws"].secrets == ("aws-access-key",)
    assert s.entries["/d"].content == "data" and s.entries["/e"].content == "empty"
    assert scan_secrets(b"nothing to see") == ()


def test_signatures_found_across_chunk_boundaries(monkeypatch):
    import kilobox.audit.scan as scan_mod
    monkeypatch.setattr(scan_mod, "CHUNK", 4096)
    monkeypatch.setattr(scan_mod, "HEAD", 4096)
    pad = 4096 - 200 - 7       # the signature straddles a 4 KiB chunk boundary
    elf = static_elf(b"\0" * pad + b"GNU bash, version 5")
    s = scan_of(tar_of({"x": ("file", elf, 0o755)}))
    assert "shell:bash" in s.entries["/x"].signatures


def test_captured_files_and_gzip_layers():
    status = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n"
    t = gzip.compress(tar_of({"var/lib/dpkg/status": status, "etc/os-release": b'ID=debian\n'}))
    s = scan_of(t)
    assert s.captured["/var/lib/dpkg/status"] == status and "/etc/os-release" in s.captured


def test_metadata_only_scan_reads_no_content():
    t = tar_of({"big": b"x" * 100000})
    s = scan_layers([layer_input(t)], options=ScanOptions(content=False, hashes=()))
    assert s.entries["/big"].size == 100000 and s.entries["/big"].sha256 == "" and s.entries["/big"].content == ""


# --------------------------------------------------------------------------- hostile input

@pytest.mark.parametrize("data", [b"not a tar at all" * 40, b"\0" * 100, tar_of({"a": b"x" * 5000})[:1024],
                                  gzip.compress(tar_of({"a": b"x"}))[:20]])
def test_bad_tar_raises_layer_error(data):
    with pytest.raises(LayerError):
        scan_of(data)


def test_escaping_names_refused():
    t = tar_of({"../../etc/passwd": b"x"})
    with pytest.raises(LayerError):
        scan_of(t)


def test_weird_names_survive():
    names = {"dir with space/f i l e": b"1", "ünïcødé/ファイル": b"2", "new\nline": b"3",
             "x/" + "long" * 60: b"4", "./dot/./slash//f": b"5", "-rf": b"6"}
    s = scan_of(tar_of({k: v for k, v in names.items()}))
    assert "/dir with space/f i l e" in s.entries and "/ünïcødé/ファイル" in s.entries
    assert "/new\nline" in s.entries and "/x/" + "long" * 60 in s.entries and "/dot/slash/f" in s.entries


def test_huge_pax_header_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("a")
        ti.pax_headers = {"comment": "x" * (2 << 20)}
        tf.addfile(ti, io.BytesIO(b""))
    with pytest.raises(LayerError, match="PAX"):
        scan_of(buf.getvalue())


def test_size_lie_raises():
    t = bytearray(tar_of({"a": b"x" * 600}))
    t = bytes(t[:512 + 512])  # header plus one block of a two-block file, no end marker
    with pytest.raises(LayerError):
        scan_of(t)


def _ustar(name: str, size: int, mode: int) -> bytes:
    h = bytearray(512)
    h[0:len(name)] = name.encode()
    h[100:108] = b"%07o\0" % mode
    h[108:116] = h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % size
    h[136:148] = b"%011o\0" % 1700000000
    h[148:156] = b" " * 8
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


class _ManyEntries(io.RawIOBase):
    """A tar of *n* small files generated on the fly: the test holds no layer in memory."""

    def __init__(self, n: int) -> None:
        self.n, self.i, self.buf, self.pos = n, 0, b"", 0

    def readable(self) -> bool:
        return True

    def _batch(self) -> bytes:
        out = []
        for i in range(self.i, min(self.i + 1000, self.n)):
            out.append(_ustar(f"d{i % 100}/file-{i:06d}.txt", 8, 0o644 if i % 1000 else 0o4755))
            out.append(b"%08d" % i + bytes(504))
        self.i += 1000
        if self.i >= self.n:
            out.append(bytes(1024))
        return b"".join(out)

    def readinto(self, b) -> int:  # noqa: ANN001
        if self.pos >= len(self.buf):
            if self.i >= self.n:
                return 0
            self.buf, self.pos = self._batch(), 0
        k = min(len(b), len(self.buf) - self.pos)
        b[:k] = self.buf[self.pos:self.pos + k]
        self.pos += k
        return k


def _scan_many(n: int) -> dict:
    import contextlib

    from kilobox.audit import build_report
    from kilobox.audit.scan import LayerInput
    s = scan_layers([LayerInput(open=lambda: contextlib.nullcontext(io.BufferedReader(_ManyEntries(n), 1 << 16)))],
                    name="many", options=ScanOptions(hashes=("sha256",)))
    report = build_report(s)
    # VmHWM, not ru_maxrss: on Linux the latter starts at the parent's RSS when forked (pytest is big)
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return {"entries": len(s.entries), "setuid": report.summary["setuid"], "maxrss_kb": hwm}


@pytest.mark.slow
def test_100k_entry_layer_in_bounded_memory():
    """Peak RSS of a fresh process scanning a generated 100,000-entry layer (no content is kept)."""
    import json
    import subprocess
    import sys
    code = "import json; from tests.unit.test_audit_scan import _scan_many; print(json.dumps(_scan_many(100_000)))"
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True, cwd=root)
    out = json.loads(p.stdout)
    assert out["entries"] == 100_000 and out["setuid"] == 100
    # interpreter + kilobox ~35 MB; per-entry metadata ~0.5 KB; layer content never held
    assert out["maxrss_kb"] < 200 * 1024, out


@pytest.mark.parametrize("name", sorted(__import__("tests.helpers.hostile", fromlist=["corpus"]).corpus()))
def test_core_hostile_corpus(name):
    """Every hostile layer of the core's corpus: a clean LayerError, or a report that stays inside the image."""
    from kilobox.audit import build_report
    from kilobox.errors import KiloboxError
    from tests.helpers.hostile import corpus
    blob = corpus()[name]
    try:
        s = scan_of(blob)
    except KiloboxError as e:
        assert isinstance(e, LayerError), (name, type(e), e)
        return
    r = build_report(s)
    for path in s.entries:
        assert path.startswith("/") and "/../" not in path + "/"
        t = s.resolve(path)
        assert t is None or t.path in s.entries
    assert r.summary["grade"] in "ABCDEF"
