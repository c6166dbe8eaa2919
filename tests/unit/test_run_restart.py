"""--restart: policy parsing, the decisions, the back-off, and the warm path's fallback."""

from __future__ import annotations

import pytest

from kilobox.cli.run_cmd import fast_main
from kilobox.errors import UsageError
from kilobox.run.restart import (BACKOFF_MAX, BACKOFF_START, check_restart, next_backoff, parse_restart,
                                 restart_text, should_restart)


@pytest.mark.parametrize("value, expected", [
    ("no", ("no", 0)), ("always", ("always", 0)), ("unless-stopped", ("unless-stopped", 0)),
    ("on-failure", ("on-failure", 0)), ("on-failure:3", ("on-failure", 3)), ("on-failure:0", ("on-failure", 0)),
])
def test_policies_as_docker_spells_them(value, expected):
    assert parse_restart(value) == expected


@pytest.mark.parametrize("value", [
    "", "yes", "Always", " always", "always ", "on-failure:", "on-failure:-1", "on-failure:+2", "on-failure:1.5",
    "on-failure:x", "on-failure:٣", "on-failure:²", "on-failure:3:4", "on-failure:" + "9" * 5000, "always:3",
    "no:0", "unless-stopped:1", ":3", "on-failure\n", "on-failure:3\x00",
])
def test_hostile_values_are_one_line_usage_errors(value):
    with pytest.raises(UsageError) as e:
        parse_restart(value)
    assert "\n" not in e.value.message and e.value.hint


def test_restart_text_round_trips():
    for v in ("no", "always", "unless-stopped", "on-failure", "on-failure:5"):
        assert restart_text(parse_restart(v)) == v
    assert restart_text(("on-failure", 0)) == "on-failure"


@pytest.mark.parametrize("kwargs, message", [
    (dict(detach=False, remove=False), "needs -d"),
    (dict(detach=True, remove=True), "--rm"),
    (dict(detach=True, remove=False, engine="podman"), "--engine"),
    (dict(detach=True, remove=False, publish=["8080:80"], engine="podman"), "--engine"),
])
def test_unsupported_combinations(kwargs, message):
    with pytest.raises(UsageError, match=message):
        check_restart("always", **kwargs)


@pytest.mark.parametrize("restart", ["always", "unless-stopped", "on-failure", "on-failure:3"])
def test_publish_goes_with_a_restart_policy(restart):
    """The monitor keeps the host ports bound across restarts and re-attaches the forwarder."""
    assert check_restart(restart, detach=True, remove=False, publish=["8080:80", "5353:53/udp"]) \
        == parse_restart(restart)


def test_no_goes_with_anything():
    assert check_restart("no", detach=False, remove=True, publish=["1:1"], engine="docker") == ("no", 0)
    assert check_restart(None, detach=False, remove=True) == ("no", 0)
    assert check_restart("on-failure:2", detach=True, remove=False) == ("on-failure", 2)


@pytest.mark.parametrize("policy, code, restarts, expected", [
    (("no", 0), 1, 0, False), (("no", 0), 0, 0, False),
    (("always", 0), 0, 0, True), (("always", 0), 137, 1000, True), (("unless-stopped", 0), 0, 5, True),
    (("on-failure", 0), 0, 0, False), (("on-failure", 0), 1, 10_000, True),
    (("on-failure", 2), 3, 0, True), (("on-failure", 2), 3, 1, True), (("on-failure", 2), 3, 2, False),
    (("on-failure", 2), 0, 0, False),
])
def test_should_restart(policy, code, restarts, expected):
    assert should_restart(policy, code, restarts) is expected


def test_backoff_doubles_caps_and_resets():
    waits, w = [], 0.0
    for _ in range(12):
        w = next_backoff(w, ran=0.5)
        waits.append(w)
    assert waits[:4] == [BACKOFF_START, 0.2, 0.4, 0.8]
    assert waits[-1] == BACKOFF_MAX and max(waits) == BACKOFF_MAX
    assert next_backoff(BACKOFF_MAX, ran=10.0) == BACKOFF_START     # a run of 10 s starts over
    assert next_backoff(0.0, ran=0.0, start=5.0) == 5.0              # the test hook's first wait
    assert next_backoff(120.0, ran=0.0, start=120.0) == 120.0        # a hook above the cap stays


@pytest.mark.parametrize("flag", [["--restart", "always"], ["--restart=on-failure:3"]])
def test_restart_falls_back_to_argparse(flag, monkeypatch):
    """The warm path does not know --restart: it must not run the container without the policy."""
    from kilobox.run import bundle
    looked: list[str] = []
    monkeypatch.setattr(bundle, "lookup", lambda image, *a: looked.append(image))
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert fast_main(["run", "-d", "--name", "svc", "img"]) is None and looked == ["img"]   # control: reached
    looked.clear()
    assert fast_main(["run", "-d", *flag, "--name", "svc", "img"]) is None
    assert looked == []
