"""The model's value classes keep the semantics of the frozen dataclasses they replaced.

(They are plain ``__slots__`` classes now: ``dataclasses`` imports ``inspect``, ~8 ms
of every CLI run.) Equality, hashing, ordering, repr, immutability, copy/pickle,
``Descriptor.with_`` and ``dataclasses.replace`` on :class:`Options`.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest

from kilobox.formats import Options
from kilobox.oci import Descriptor, Digest, ImageConfig, Index, Manifest, Platform, Reference, mediatypes as mt
from kilobox.transports import Location

D = Digest.of(b"x")
E = Digest.of(b"y")


def _values() -> list[object]:
    cfg = ImageConfig.build({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
    m = Manifest.build(cfg.descriptor(), [Descriptor.for_bytes(mt.OCI_LAYER, b"l", annotations={"a": "b"})])
    return [D, Descriptor(mt.OCI_LAYER, D, 1, {"k": "v"}, Platform("linux", "arm", "v7"), "t", ("u",), b"x"),
            Platform("linux", "amd64", os_features=("f",)), Reference.parse("127.0.0.1:5000/a/b:t@" + str(D)),
            Location.parse("oci:/x:t"), Location.parse("docker://h.example/r:1"), m, cfg,
            Index.build([m.descriptor(platform=Platform("linux", "amd64"))])]


@pytest.mark.parametrize("value", _values(), ids=lambda v: type(v).__name__)
def test_value_semantics(value: object) -> None:
    twin = pickle.loads(pickle.dumps(value))
    assert twin == value and twin is not value
    assert copy.copy(value) == value and copy.deepcopy(value) == value
    assert repr(value).startswith(type(value).__name__ + "(")
    assert (value == object()) is False and value != 1
    field = type(value).__slots__[0]
    with pytest.raises(AttributeError):
        setattr(value, field, None)
    with pytest.raises(AttributeError):
        delattr(value, field)
    with pytest.raises(AttributeError):
        value.new_attribute = 1  # type: ignore[attr-defined]
    if not isinstance(value, (Manifest, Index, ImageConfig)):      # those hold dicts: unhashable, as before
        assert hash(twin) == hash(value) and len({value, twin}) == 1


def test_digest_order_and_repr() -> None:
    assert sorted([E, D]) == sorted([D, E]) and (D < E) == ((D.algorithm, D.hex) < (E.algorithm, E.hex))
    assert D <= D and D >= D and not D < D
    with pytest.raises(TypeError):
        D < "sha256:x"  # noqa: B015
    assert repr(D) == f"Digest(algorithm='sha256', hex='{D.hex}')"


def test_descriptor_equality_ignores_annotations_and_data() -> None:
    a = Descriptor(mt.OCI_LAYER, D, 1, {"a": "1"}, data=b"x")
    b = Descriptor(mt.OCI_LAYER, D, 1, {"b": "2"})
    assert a == b and hash(a) == hash(b)
    assert a != Descriptor(mt.OCI_LAYER, D, 1, platform=Platform("linux", "amd64"))
    assert Descriptor(mt.OCI_LAYER, D, 1).annotations == {}


def test_descriptor_with_() -> None:
    a = Descriptor(mt.OCI_LAYER, D, 1, {"a": "1"})
    b = a.with_(size=2, annotations={})
    assert (b.size, b.annotations, b.digest, a.size) == (2, {}, D, 1)
    with pytest.raises(TypeError):
        a.with_(nope=1)


def test_keyword_and_positional_construction() -> None:
    assert Platform(os="linux", architecture="arm64") == Platform("linux", "arm64", "", "", ())
    assert Reference("r", "a/b") == Reference(registry="r", repository="a/b", tag="", digest=None)
    assert Location("oci", "p") == Location(transport="oci", path="p", tag="", ref=None)
    with pytest.raises(TypeError):
        Platform("linux")  # type: ignore[call-arg]


def test_options_is_still_a_dataclass_for_its_users() -> None:
    """build/ and slim/ call dataclasses.replace(opts, tag=...)."""
    o = Options(insecure=("h:1",), tag="a")
    assert dataclasses.is_dataclass(o)
    r = dataclasses.replace(o, tag="b")
    assert (r.tag, r.insecure, o.tag) == ("b", ("h:1",), "a") and isinstance(r, Options)
    assert [f.name for f in dataclasses.fields(Options)] == ["insecure", "username", "password", "docker_config",
                                                             "progress", "tag", "extra", "cert_dir", "tls_verify"]
    # the TLS fields came last: positional callers of the old seven fields are unchanged
    old = Options(("h",), "u", "p", "c", None, "t", {"k": 1})
    assert (old.extra, old.cert_dir, old.tls_verify) == ({"k": 1}, None, None)
    t = dataclasses.replace(o, cert_dir="/d", tls_verify=False)
    assert (t.cert_dir, t.tls_verify, t.tag) == ("/d", False, "a") and t != o and "tls_verify=False" in repr(t)
    assert dataclasses.asdict(Options())["extra"] == {}
    assert Options() == Options() and Options(tag="x") != Options() and Options().extra is not Options().extra
    with pytest.raises(TypeError):
        hash(Options())
    with pytest.raises(TypeError):
        dataclasses.replace(o, nope=1)


def test_options_fields_before_the_class_was_asked() -> None:
    code = ("import dataclasses\nfrom kilobox.formats import Options\n"
            "print([f.name for f in dataclasses.fields(Options())][-1], dataclasses.replace(Options(), tag='t').tag)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["tls_verify", "t"]
