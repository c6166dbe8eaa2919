"""--publish parsing (hostile input included): TCP and UDP."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as s

from kilobox.errors import UsageError
from kilobox.run.publish import Port, parse_publish


@pytest.mark.parametrize("item, port", [
    ("8080:80", Port("127.0.0.1", 8080, 80)),
    ("0.0.0.0:80:8080", Port("0.0.0.0", 80, 8080)),
    ("10.1.2.3:1:65535/tcp", Port("10.1.2.3", 1, 65535)),
    ("5683:5683/udp", Port("127.0.0.1", 5683, 5683, "udp")),
    ("127.0.0.1:5353:53/udp", Port("127.0.0.1", 5353, 53, "udp")),
    ("8125:8125/UDP", Port("127.0.0.1", 8125, 8125, "udp")),
])
def test_good(item, port):
    assert parse_publish(item) == port


@pytest.mark.parametrize("item", ["", "80", "a:b", "0:80", "80:0", "70000:80", "::1:80:80",
                                  "999.1.1.1:80:80", "80:80\n", "1.2.3:80:80", " 80:80", "80:80:80:80",
                                  "1:2/sctp", "70000:1/udp", "1:70000/udp", "80:80/", "80:80/udp/tcp", "80:80/ud",
                                  "80:80/udp\n", "80:80 /udp", "010.0.0.1:80:80", "\u0668\u0660:80", "80:\u0668\u0660/udp",
                                  "127.0.0.1:80:80/udpudpudp", "/udp", ":80/udp", "80:/udp", None])
def test_bad(item):
    with pytest.raises(UsageError):
        parse_publish(item)


@given(s.text(max_size=30))
def test_never_crashes(text):
    try:
        p = parse_publish(text)
    except UsageError:
        return
    assert 1 <= p.host_port <= 65535 and 1 <= p.container_port <= 65535
    assert p.proto in ("tcp", "udp")
