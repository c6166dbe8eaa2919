"""Runtime config generation: hardened defaults, overrides, schema validity."""

from __future__ import annotations

import pytest

from kilobox.errors import RunError, UsageError
from kilobox.run import spec
from kilobox.run.options import make_options
from kilobox.run.seccomp import oci_profile
from tests.helpers.schemas import validate_runtime_config


def _config(**kw):
    opts = make_options(**kw)
    return spec.runtime_config(argv=["/app", "x"], env=spec.merge_env(["A=1"], opts.env), cwd="/", uid=65532,
                               gid=65532, gids=[], opts=opts, seccomp=oci_profile(opts.cap_add, "x86_64"))


def test_defaults_are_hardened_and_valid():
    c = _config()
    validate_runtime_config(c)
    p = c["process"]
    assert p["noNewPrivileges"] is True
    assert p["user"] == {"uid": 65532, "gid": 65532}
    assert all(v == [] for v in p["capabilities"].values())
    assert c["root"]["readonly"] is True
    ns = {n["type"] for n in c["linux"]["namespaces"]}
    assert {"pid", "ipc", "uts", "mount", "network"} <= ns
    assert "/proc/kcore" in c["linux"]["maskedPaths"]
    assert "/proc/sys" in c["linux"]["readonlyPaths"]
    assert c["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert "memory" not in c["linux"]["resources"]
    sysfs = next(m for m in c["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]


def test_escape_hatches_are_explicit_and_valid():
    c = _config(network="host", read_write=True, cap_add=["net_bind_service"], tmpfs=["/tmp:size=16m,exec"],
                memory="64m", pids_limit=50, cpus="0.5", env=["B=2"], hostname="web")
    validate_runtime_config(c)
    assert "network" not in {n["type"] for n in c["linux"]["namespaces"]}
    assert c["root"]["readonly"] is False
    assert c["process"]["capabilities"]["effective"] == ["CAP_NET_BIND_SERVICE"]
    assert c["process"]["capabilities"]["ambient"] == ["CAP_NET_BIND_SERVICE"]
    t = next(m for m in c["mounts"] if m["destination"] == "/tmp")
    assert "exec" in t["options"] and "noexec" not in t["options"] and "size=16m" in t["options"]
    r = c["linux"]["resources"]
    assert r["memory"] == {"limit": 64 << 20}
    assert r["pids"] == {"limit": 50}
    assert r["cpu"] == {"quota": 50000, "period": 100000}
    assert c["process"]["env"] == [spec.DEFAULT_PATH, "A=1", "B=2"]
    assert c["hostname"] == "web"


def test_unconfined_seccomp_omits_the_section():
    opts = make_options(seccomp="unconfined")
    c = spec.runtime_config(argv=["/a"], env=[], cwd="/", uid=1, gid=1, gids=[5], opts=opts, seccomp=None)
    validate_runtime_config(c)
    assert "seccomp" not in c["linux"]
    assert c["process"]["user"]["additionalGids"] == [5]


@pytest.mark.parametrize("cfg, kw, argv", [
    ({"Entrypoint": ["/e"], "Cmd": ["c"]}, {}, ["/e", "c"]),
    ({"Entrypoint": ["/e"], "Cmd": ["c"]}, {"args": ["x", "y"]}, ["/e", "x", "y"]),
    ({"Entrypoint": ["/e"], "Cmd": ["c"]}, {"entrypoint": "/other"}, ["/other"]),
    ({"Entrypoint": ["/e"], "Cmd": ["c"]}, {"entrypoint": "/other", "args": ["z"]}, ["/other", "z"]),
    ({"Cmd": ["/c", "1"]}, {}, ["/c", "1"]),
    ({"Cmd": ["/c"]}, {"entrypoint": "", "args": ["/bin/x"]}, ["/bin/x"]),
])
def test_command_composition_like_docker(cfg, kw, argv):
    assert spec.command(cfg, make_options(**kw)) == argv


def test_empty_command_is_a_usage_error():
    with pytest.raises(UsageError):
        spec.command({}, make_options())


def test_env_overrides_keep_order_and_later_wins():
    env = spec.merge_env(["PATH=/bin", "A=1", "B=2"], ("A=3", "C=4"))
    assert env == ["PATH=/bin", "A=3", "B=2", "C=4"]


def test_root_is_refused_unless_explicit():
    with pytest.raises(RunError, match="root"):
        spec.check_root(0, make_options(), "oci:x")
    spec.check_root(0, make_options(user="0"), "oci:x")
    spec.check_root(65532, make_options(), "oci:x")
    assert spec.user_spec({}, make_options()) == "0"
    assert spec.user_spec({"User": "65532"}, make_options()) == "65532"
    assert spec.user_spec({"User": "65532"}, make_options(user="0")) == "0"
