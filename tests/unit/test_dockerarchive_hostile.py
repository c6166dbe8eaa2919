"""Hostile and damaged docker-archives: each is a clear FormatError, and nothing lands at the destination."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kilobox.copying import copy
from kilobox.errors import DigestMismatch, FormatError, LayoutError, NotFound
from kilobox.formats.dockerarchive import DockerArchiveSource, TarIndex, parse_manifest_json
from kilobox.oci import Manifest
from kilobox.testing import random_image, validate_image, write_image
from tests.helpers.hostile import negative_size
from tests.unit.test_dockerarchive import image_parts, legacy_members, write_tar

MiB = 1 << 20


def _good() -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    cfg, blobs = image_parts({"x": b"payload"})
    return legacy_members(cfg, blobs, ["app:1"])


def _archive(path: Path, item: dict[str, Any] | None = None, members: list[tuple[Any, ...]] | None = None,
             manifest: bytes | None = None) -> Path:
    good_item, good_members = _good()
    item = good_item if item is None else item
    ms = good_members if members is None else members
    raw = manifest if manifest is not None else json.dumps([item]).encode()
    return write_tar(path, [*ms, ("manifest.json", raw)])


def _with(**changes: Any) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        item, members = _good()
        item.update(changes)
        return _archive(path, item, members)
    return build


def _extra(*extra: tuple[Any, ...], layers: list[str] | None = None) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        item, members = _good()
        if layers is not None:
            item["Layers"] = layers
        return _archive(path, item, [*members, *extra])
    return build


def _manifest(raw: bytes) -> Callable[[Path], Path]:
    return lambda path: _archive(path, manifest=raw)


def _config_mismatch(path: Path) -> Path:
    item, members = _good()
    cfg_name = item["Config"]
    members = [(m[0], m[1] + b" ") if m[0] == cfg_name else m for m in members]
    return _archive(path, item, members)


def _diff_ids_count(path: Path) -> Path:
    cfg, blobs = image_parts({"x": b"1"}, layers=2)
    item, members = legacy_members(cfg, blobs, [])
    item["Layers"] = item["Layers"][:1]
    return _archive(path, item, members)


def _huge_config(path: Path) -> Path:
    cfg = json.dumps({"rootfs": {"diff_ids": []}, "pad": "x" * (5 * MiB)}).encode()
    name = hashlib.sha256(cfg).hexdigest() + ".json"
    return _archive(path, {"Config": name, "Layers": []}, [(name, cfg)])


def _bad_config(path: Path) -> Path:
    cfg = b'{"rootfs": {"diff_ids": "nope"}}'
    name = hashlib.sha256(cfg).hexdigest() + ".json"
    return _archive(path, {"Config": name, "Layers": []}, [(name, cfg)])


def _xz_layer(path: Path) -> Path:
    item, members = _good()
    layer = item["Layers"][0]
    members = [(m[0], b"\xfd7zXZ\x00" + b"\0" * 100) if m[0] == layer else m for m in members]
    return _archive(path, item, members)


def _duplicate_member(path: Path) -> Path:
    item, members = _good()
    return write_tar(path, [*members, ("manifest.json", json.dumps([item]).encode()),
                            ("manifest.json", b"[]")])


def _traversal_member(path: Path) -> Path:
    item, members = _good()
    return _archive(path, item, [*members, ("../evil", b"x")])


def _absolute_member(path: Path) -> Path:
    item, members = _good()
    return _archive(path, item, [*members, ("/etc/evil", b"x")])


def _truncated(path: Path) -> Path:
    _archive(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _gzipped(path: Path) -> Path:
    _archive(path)
    path.write_bytes(gzip.compress(path.read_bytes()))
    return path


def _no_manifest(path: Path) -> Path:
    return write_tar(path, [("index.json", b"{}"), ("oci-layout", b"{}")])


HOSTILE: dict[str, tuple[Callable[[Path], Path], type[Exception], str]] = {
    "manifest not json": (_manifest(b"\x00garbage{"), LayoutError, "not valid JSON"),
    "manifest an object": (_manifest(b'{"Config": "a"}'), LayoutError, "non-empty JSON list"),
    "manifest empty list": (_manifest(b"[]"), LayoutError, "non-empty JSON list"),
    "manifest item not object": (_manifest(b"[1]"), LayoutError, "must be an object"),
    "config not a string": (_with(Config=5), LayoutError, "invalid path"),
    "layers not a list": (_with(Layers="a.tar"), LayoutError, "Layers must be a list"),
    "repotags wrong": (_with(RepoTags=[1]), LayoutError, "RepoTags"),
    "deep json": (_manifest(b"[" * 100000 + b"]" * 100000), LayoutError, "not valid JSON"),
    "huge manifest.json": (_manifest(b"[" + b" " * (4 * MiB) + b"]"), LayoutError, "4 MiB"),
    "missing manifest.json": (_no_manifest, LayoutError, "oci-archive"),
    "missing layer file": (_with(Layers=["0" * 64 + ".tar"]), LayoutError, "missing"),
    "missing config": (_with(Config="f" * 64 + ".json"), LayoutError, "missing"),
    "layer path traversal": (_extra(layers=["../x"]), LayoutError, "escapes the archive"),
    "layer path absolute": (_extra(layers=["/etc/passwd"]), LayoutError, "escapes the archive"),
    "config path traversal": (_with(Config="a/../../c.json"), LayoutError, "escapes the archive"),
    "member name traversal": (_traversal_member, LayoutError, "escapes the archive"),
    "member name absolute": (_absolute_member, LayoutError, "escapes the archive"),
    "symlink layer to absolute path": (_extra(("evil.tar", "/etc/passwd", "sym"), layers=["evil.tar"]),
                                       LayoutError, "absolute path"),
    "symlink layer climbing out": (_extra(("d", None, "dir"), ("d/evil.tar", "../../etc/passwd", "sym"),
                                          layers=["d/evil.tar"]), LayoutError, "outside the archive"),
    "symlink layer dangling": (_extra(("evil.tar", "nothere.tar", "sym"), layers=["evil.tar"]),
                               LayoutError, "missing"),
    "symlink loop": (_extra(("a.tar", "b.tar", "sym"), ("b.tar", "a.tar", "sym"), layers=["a.tar"]),
                     LayoutError, "too many symlinks"),
    "hardlink layer": (_extra(("evil.tar", "manifest.json", "hard"), layers=["evil.tar"]),
                       LayoutError, "hardlink"),
    "directory as layer": (_extra(("adir", None, "dir"), layers=["adir"]), LayoutError, "not a regular file"),
    "config digest mismatch": (_config_mismatch, DigestMismatch, "does not match its digest"),
    "config over 4 MiB": (_huge_config, LayoutError, "4 MiB"),
    "config invalid": (_bad_config, LayoutError, "diff_ids"),
    "diff_ids count": (_diff_ids_count, LayoutError, "diff_ids"),
    "xz layer": (_xz_layer, LayoutError, "xz-compressed"),
    "duplicate member": (_duplicate_member, LayoutError, "appears twice"),
    "truncated archive": (_truncated, LayoutError, "truncated|missing|not a valid tar"),
    "gzipped archive": (_gzipped, LayoutError, "gzip-compressed"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused(tmp_path: Path, case: str) -> None:
    build, exc, match = HOSTILE[case]
    path = build(tmp_path / "bad.tar")
    with pytest.raises(exc) as info:
        DockerArchiveSource(path)
    assert re.search(match, f"{info.value.message} (hint: {info.value.hint})"), info.value.message
    assert info.value.message.startswith("docker-archive:") and "\n" not in info.value.message
    for dest in (f"oci:{tmp_path / 'lay'}:x", f"docker-archive:{tmp_path / 'out.tar'}:x"):
        with pytest.raises(exc):
            copy(f"docker-archive:{path}", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar"]


def test_not_a_tar_and_missing_file(tmp_path: Path) -> None:
    for data in (b"", b"hello world" * 100, bytes(range(256)) * 8):
        p = tmp_path / "junk.tar"
        p.write_bytes(data)
        with pytest.raises(LayoutError):
            DockerArchiveSource(p)
    with pytest.raises(NotFound):
        DockerArchiveSource(tmp_path / "nothere.tar")


@pytest.mark.parametrize("where", ["first", "last"])
def test_negative_member_size_is_refused_not_looped(tmp_path: Path, where: str) -> None:
    """A negative (base-256) member size sends Python's tarfile back to an earlier header for ever."""
    good = _archive(tmp_path / "good.tar").read_bytes()
    end = len(good)
    while end >= 512 and good[end - 512:end] == bytes(512):
        end -= 512                                        # strip the end-of-archive blocks
    evil = negative_size()
    path = tmp_path / "bad.tar"
    path.write_bytes(evil + good if where == "first" else good[:end] + evil)
    with pytest.raises(LayoutError, match=r"invalid size -\d+ in header of 'loop'"):
        DockerArchiveSource(path)


def test_in_archive_symlink_is_followed(tmp_path: Path) -> None:
    """Old docker saves link duplicate layers: <id>/layer.tar -> ../<other>/layer.tar (allowed)."""
    item, members = _good()
    real = item["Layers"][0]
    path = _archive(tmp_path / "ok.tar", {**item, "Layers": ["d/layer.tar"]},
                    [*members, ("d", None, "dir"), ("d/layer.tar", f"../{real}", "sym")])
    validate_image(f"docker-archive:{path}")


def test_layer_that_lies_about_its_diff_id(tmp_path: Path) -> None:
    """An uncompressed layer whose bytes differ from the config's diff_id: refused on copy, nothing written."""
    item, members = _good()
    layer = item["Layers"][0]
    members = [(m[0], m[1][:-1] + b"\x01") if m[0] == layer else m for m in members]
    path = _archive(tmp_path / "lie.tar", item, members)
    with DockerArchiveSource(path):
        pass                                  # opening is cheap: the layer is not hashed yet
    for dest in (f"oci:{tmp_path / 'lay'}:x", f"docker-archive:{tmp_path / 'out.tar'}:x"):
        with pytest.raises(DigestMismatch):
            copy(f"docker-archive:{path}", dest)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lie.tar"]


def test_index_json_that_lies_is_ignored(tmp_path: Path) -> None:
    """index.json naming a manifest whose blob is tampered with: fall back to manifest.json."""
    src = random_image(seed=4)
    plain = Manifest.parse(src.manifest_bytes(src.root()))
    annotated = Manifest.build(plain.config, plain.layers, annotations={"org.example": "x"})
    src.root_desc = src.add(annotated.media_type, annotated.raw)
    out = tmp_path / "ours.tar"
    write_image(src, f"docker-archive:{out}:a")
    with DockerArchiveSource(out) as s:
        assert s.root().digest == annotated.digest
    data = bytearray(out.read_bytes())
    pos = data.find(annotated.raw)
    data[pos + 2] ^= 0x20                  # flip a byte of the manifest blob inside the tar
    out.write_bytes(bytes(data))
    with DockerArchiveSource(out) as s:
        assert s.root().digest == plain.digest   # synthesised (random_image's manifest is canonical too)
    validate_image(f"docker-archive:{out}")


def _json_children(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from(["Config", "Layers", "RepoTags", "x"]),
                                                        kids, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20), _json_children,
                    max_leaves=20))
def test_manifest_json_parser_only_raises_layout_errors(doc: Any) -> None:
    try:
        parse_manifest_json(json.dumps(doc).encode(), "m")
    except LayoutError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_damaged_archive_fails_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    """Random byte damage anywhere in a valid archive: opens and verifies, or a FormatError/NotFound."""
    good = tmp_path / "good.tar"
    if not good.exists():
        write_image(random_image(layers=2, size=200, seed=9), f"docker-archive:{good}:x")
    raw = bytearray(good.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    bad = tmp_path / "bad.tar"
    bad.write_bytes(bytes(raw[: data.draw(st.integers(0, len(raw)))]))
    try:
        validate_image(f"docker-archive:{bad}")
    except (FormatError, NotFound):
        pass


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=3000))
def test_tar_index_on_random_bytes(tmp_path: Path, blob: bytes) -> None:
    p = tmp_path / "r.tar"
    p.write_bytes(blob)
    try:
        TarIndex(p, "r").close()
    except LayoutError:
        pass
