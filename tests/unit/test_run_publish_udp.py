"""--publish/udp: the pure parts — the publish list, the client table, ps and engine forms, the warm path."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as s

from kilobox.cli.run_cmd import fast_main
from kilobox.errors import UsageError
from kilobox.run.options import make_options
from kilobox.run.publish import (UDP_CLIENTS, ClientTable, Port, describe, engine_flag, parse_publish,
                                 parse_publish_list, udp_limit)


def test_same_number_once_per_protocol():
    ports = parse_publish_list(["5683:5683/udp", "5683:5683", "127.0.0.2:5683:1/udp"])
    assert [p.proto for p in ports] == ["udp", "tcp", "udp"]


@pytest.mark.parametrize("items", [
    ["5683:5683/udp", "5683:1/udp"],
    ["80:80", "80:81/tcp"],
    ["0.0.0.0:53:53/udp", "127.0.0.1:53:5353/udp"],
    ["127.0.0.1:53:53/udp", "0.0.0.0:53:53/udp"],
])
def test_a_host_port_twice_is_a_usage_error(items):
    with pytest.raises(UsageError) as e:
        parse_publish_list(items)
    assert "already published" in str(e.value) and "\n" not in str(e.value) and e.value.hint


def test_errors_are_one_line_with_a_hint():
    for item in ("1:2/sctp", "70000:1/udp", "a:b", "", "10.0.0.256:1:1/udp"):
        with pytest.raises(UsageError) as e:
            parse_publish(item)
        assert "\n" not in str(e.value) and e.value.hint


def test_ps_and_engine_forms():
    p = parse_publish("5683:5683/udp")
    assert describe(p) == "127.0.0.1:5683->5683/udp"
    assert engine_flag(p) == "127.0.0.1:5683:5683/udp"          # the host address never widens to 0.0.0.0
    assert describe(parse_publish("0.0.0.0:80:8080")) == "0.0.0.0:80->8080/tcp"


def test_podman_flags_pass_udp_on():
    from kilobox.run.engines import run_flags
    opts = make_options()
    plain = run_flags("podman", opts, None)
    assert plain[plain.index("--network") + 1] == "none" and "-p" not in plain
    f = run_flags("podman", opts, None, [parse_publish("127.0.0.1:5353:53/udp"), parse_publish("8080:80")])
    assert f[f.index("--network") + 1] == "bridge"          # podman drops -p under --network none
    assert [f[i + 1] for i, a in enumerate(f) if a == "-p"] == ["127.0.0.1:5353:53/udp", "127.0.0.1:8080:80/tcp"]


@pytest.mark.parametrize("argv", [
    ["run", "-p", "5683:5683/udp", "x"], ["run", "--publish", "53:53/udp", "x"], ["run", "-p5683:5683/udp", "x"],
    ["run", "--publish=5683:5683/udp", "x"], ["run", "-d", "-p", "1:1/udp", "--rm", "x"],
])
def test_the_warm_path_leaves_publish_to_argparse(argv):
    assert fast_main(argv) is None


class Clock:
    def __init__(self):
        self.closed: list[str] = []

    def table(self, limit=3, idle=60.0):
        return ClientTable(self.closed.append, limit, idle)


def test_lookup_refreshes_and_expires_idle_mappings():
    c = Clock()
    t = c.table()
    t.add(("a", 1), "A", now=0.0)
    t.add(("b", 1), "B", now=10.0)
    assert t.next_expiry(20.0) == 40.0
    assert t.get(("a", 1), now=30.0) == "A"                  # traffic keeps it alive
    assert t.next_expiry(30.0) == 40.0                       # b is now the oldest
    assert t.expire(69.9) == 0
    assert t.expire(70.0) == 1 and c.closed == ["B"]         # b: idle since 10
    assert t.get(("b", 1), now=70.0) is None
    assert t.expire(90.0) == 1 and c.closed == ["B", "A"] and len(t) == 0
    assert t.next_expiry(90.0) is None


def test_a_full_table_evicts_the_least_recently_used():
    c = Clock()
    t = c.table(limit=3)
    for i, v in enumerate("ABC"):
        t.add(v, v, now=float(i))
    t.get("A", now=5.0)
    t.add("D", "D", now=6.0)
    assert c.closed == ["B"] and len(t) == 3
    t.clear()
    assert sorted(c.closed) == ["A", "B", "C", "D"] and len(t) == 0


@given(s.lists(s.tuples(s.integers(0, 20), s.floats(0, 1000, allow_nan=False)), max_size=200),
       s.integers(1, 8))
def test_table_stays_bounded_and_closes_each_value_once(ops, limit):
    closed: list[int] = []
    t = ClientTable(closed.append, limit, idle=60.0)
    now, made = 0.0, []
    for addr, dt in ops:
        now += dt
        t.expire(now)
        if t.get(addr, now) is None:
            made.append(len(made))
            t.add(addr, made[-1], now)
        assert len(t) <= limit
    t.clear()
    assert sorted(closed) == made


def test_the_client_limit_fits_the_open_file_limit():
    assert udp_limit(1, 1 << 20) == UDP_CLIENTS
    assert udp_limit(1, 1024) == 960
    assert udp_limit(4, 1024) == 240
    assert udp_limit(100, 256) == 16                         # never below a working minimum
    assert Port("127.0.0.1", 1, 1) == Port("127.0.0.1", 1, 1, "tcp")
