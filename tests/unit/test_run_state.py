"""Container state: names are claimed atomically, liveness checks survive pid reuse."""

from __future__ import annotations

import os

import pytest

from kilobox.errors import NotFound, RunError
from kilobox.run import state as st


def test_claim_and_clash(tmp_path):
    name, d = st.claim("web", tmp_path)
    assert name == "web" and os.path.isdir(d)
    with pytest.raises(RunError, match="already in use"):
        st.claim("web", tmp_path)
    auto = {st.claim(None, tmp_path)[0] for _ in range(20)}
    assert len(auto) == 20 and all(n.startswith("kb-") for n in auto)


def test_load_unknown_and_traversal(tmp_path):
    for bad in ("nope", "../x", "", ".hidden"):
        with pytest.raises(NotFound):
            st.load(bad, tmp_path)


def test_status_and_exit(tmp_path):
    name, d = st.claim("a", tmp_path)
    st.write_json(os.path.join(d, "state.json"), {"name": name, "runtime_pid": None})
    doc = st.load(name, tmp_path)
    assert st.status(doc) == ("created", None)
    doc["runtime_pid"], doc["runtime_started"] = os.getpid(), st.start_time(os.getpid())
    assert st.status(doc) == ("running", None)
    doc["runtime_started"] = 1          # same pid, another process: not ours
    assert st.status(doc) == ("dead", None)
    st.write_exit(d, 3)
    assert st.status(doc) == ("exited", 3)
    assert [c["name"] for c in st.iter_containers(tmp_path)] == ["a"]
    st.remove_dir(d)
    assert list(st.iter_containers(tmp_path)) == []


def test_corrupt_state_is_an_error(tmp_path):
    _, d = st.claim("b", tmp_path)
    open(os.path.join(d, "state.json"), "w").write("{not json")
    with pytest.raises(RunError, match="unreadable"):
        st.load("b", tmp_path)
    assert list(st.iter_containers(tmp_path)) == []


@pytest.mark.parametrize("doc", [
    {"name": "kb-1", "argv": ["/probe", "a b", 'q"uote', "back\\slash", "tab\t", "nl\n", "\x00", "é", "\u2028", "😀"],
     "created": 1796417735.317594, "rm": True, "detached": False, "runtime_pid": None, "n": -3, "big": 10 ** 30,
     "nested": {"k": [1, 2.5, {"x": []}], "": ""}},
    {}, {"a": []}, {"a": 0.0}, {"a": 1e-300},
])
def test_state_json_without_the_json_module(doc, tmp_path):
    import json
    assert json.loads(st.to_json(doc)) == doc
    st.write_json(tmp_path / "s.json", doc)
    assert json.loads((tmp_path / "s.json").read_text()) == doc


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object(), b"bytes"])
def test_state_json_refuses_what_json_refuses(bad):
    with pytest.raises((TypeError, ValueError)):
        st.to_json({"x": bad})


def test_discard(tmp_path):
    _, d = st.claim("plain", tmp_path)
    st.write_json(os.path.join(d, "state.json"), {"name": "plain"})
    open(os.path.join(d, "pid"), "w").write("1\n")
    st.discard(d)
    assert not os.path.exists(d)
    _, d = st.claim("upper", tmp_path)                 # a --read-write container: more than two files
    st.write_json(os.path.join(d, "state.json"), {"name": "upper"})
    os.makedirs(os.path.join(d, "upper", "etc"))
    os.chmod(os.path.join(d, "upper", "etc"), 0o500)
    st.discard(d)
    assert os.listdir(tmp_path / "containers") == []
    st.discard(os.path.join(tmp_path, "containers", "gone"))   # already gone: nothing to do
