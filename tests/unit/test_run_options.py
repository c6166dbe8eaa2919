"""Run options: parsing and validation of user input (hostile input included)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as s

from kilobox.errors import UsageError
from kilobox.run.options import check_name, make_options, parse_env, parse_size, parse_tmpfs


@pytest.mark.parametrize("text, n", [("64m", 64 << 20), ("1g", 1 << 30), ("1GiB", 1 << 30), ("2097152", 2 << 20),
                                     ("1.5m", int(1.5 * (1 << 20))), ("512 MB", 512 << 20)])
def test_sizes(text, n):
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "abc", "-1m", "1x", "1k", "m", "1e9", "\0"])
def test_bad_sizes(text):
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("name", ["", "-x", ".x", "a/b", "a b", "x" * 64, "../x", "a\0", "web\n", "w\u00e9b"])
def test_bad_names(name):
    with pytest.raises(UsageError):
        check_name(name)


def test_good_names():
    assert check_name("web-1.a_b") == "web-1.a_b"


def test_env_forms():
    assert parse_env(["A=1", "B", "C"], {"B": "2"}) == ("A=1", "B=2")
    for bad in ["=x", "1A=2", "A B=1", "A\0=1", "A=\0", "A\n=1"]:
        with pytest.raises(UsageError):
            parse_env([bad], {})


@pytest.mark.parametrize("item", ["tmp", "/", "/a/../b", "/tmp:size=1m;rm", "/tmp:a b", "/x\0"])
def test_bad_tmpfs(item):
    with pytest.raises(UsageError):
        parse_tmpfs(item)


@pytest.mark.parametrize("kw", [{"network": "bridge"}, {"workdir": "rel"}, {"pids_limit": 0}, {"cpus": "x"},
                                {"cpus": "0"}, {"cap_add": ["CAP_NOPE"]}, {"user": ""}, {"user": "a:b:c"},
                                {"hostname": "a b"}, {"seccomp": "/etc/x.json"}])
def test_bad_options(kw):
    with pytest.raises(UsageError):
        make_options(**kw)


def test_options_key_differs_per_option():
    a, b = make_options(), make_options(env=["A=1"])
    assert a.key() != b.key()
    assert a.key() == make_options().key()
    assert make_options(cap_add=["net_raw", "CAP_CHOWN"]).cap_add == ("CAP_CHOWN", "CAP_NET_RAW")


@given(s.text(max_size=40))
def test_parsers_never_crash(text):
    for fn in (parse_size, check_name, parse_tmpfs):
        try:
            fn(text)
        except UsageError:
            pass
    try:
        parse_env([text], {})
    except UsageError:
        pass


@given(s.text(alphabet="aZ09_.-/ \n\t\0é:=", max_size=70))
def test_name_and_env_key_checks_match_their_regexes(text):
    import re
    from kilobox.run.options import _is_env_key, _is_name
    assert bool(_is_name(text)) == bool(re.match(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z", text))
    assert bool(_is_env_key(text)) == bool(re.match(r"[A-Za-z_][A-Za-z0-9_.-]*\Z", text))


def test_record_type_behaves_as_namedtuple():
    import pickle
    from collections import namedtuple

    from kilobox.run.ns import Mounts
    from kilobox._record import record_type
    R = record_type("R", "a b c", (2, 3))
    N = namedtuple("N", "a b c", defaults=(2, 3))
    for args, kw in [((1,), {}), ((1, 5), {}), ((), {"a": 1, "c": 9}), ((1, 2, 3), {}), ((1,), {"b": None})]:
        r, n = R(*args, **kw), N(*args, **kw)
        assert r == n and tuple(r) == tuple(n) and hash(r) == hash(n)
        assert (r.a, r.b, r.c) == (n.a, n.b, n.c) and r._asdict() == n._asdict()
        assert r._replace(b="x") == n._replace(b="x") and type(r._replace(b="x")) is R
        assert repr(r) == repr(n).replace("N(", "R(")
    for args, kw in [((), {}), ((1, 2, 3, 4), {}), ((1,), {"a": 2}), ((1,), {"zz": 1})]:
        with pytest.raises(TypeError):
            R(*args, **kw)
        with pytest.raises(TypeError):
            N(*args, **kw)
    assert R._fields == ("a", "b", "c") and R._field_defaults == {"b": 2, "c": 3}
    m = Mounts("/r", "/t", cgroup_fix="cgroup2")
    assert pickle.loads(pickle.dumps(m)) == m and m.overlay == "" and m.mkdirs == ()
    with pytest.raises(AttributeError):
        m.rootfs = "/x"
    o = make_options(env=["A=1"])
    assert make_options(**{**o._asdict(), "network": "host"}).network == "host"
    assert o.key().startswith("4|(None, False, (), ('A=1',),")
