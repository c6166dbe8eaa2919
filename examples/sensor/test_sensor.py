"""sensor: MQTT 3.1.1 QoS 1 publishing to a real mosquitto broker on 127.0.0.1 -- every platform
(qemu-user for the foreign ones), plus reconnect with backoff, DUP retransmission, keep-alive pings,
graceful SIGTERM, bad configuration, and the image."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.toolchain import TEST_PLATFORMS, runner
from tests.helpers.tools import free_port, kilobox, need

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOPIC = "kilobox/test/temperature"


class Broker:
    """A mosquitto on 127.0.0.1:<free port>, logging everything to a file; stop/start/pause."""

    def __init__(self, tmp: Path) -> None:
        self.exe = need("mosquitto")
        self.port = free_port()
        self.log = tmp / "mosquitto.log"
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                             "log_dest stderr\nlog_type all\nlog_timestamp false\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Broker":
        # stderr, not `log_dest file`: mosquitto started as root drops to its own user
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=log)
        wait_for(self._listening, 10, "mosquitto did not start")
        return self

    def _listening(self) -> bool:
        import socket
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
            return True
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(what)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


class Sensor:
    """The sensor binary (native or under qemu) with its stderr in a file."""

    def __init__(self, binary: Path, platform: str, tmp: Path, **env: str) -> None:
        self.log = tmp / f"sensor-{time.monotonic_ns()}.log"
        self.stderr = open(self.log, "wb")
        self.proc = subprocess.Popen([*runner(platform), str(binary)], env=env, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_log(self, needle: str, timeout: float = 20, count: int = 1) -> None:
        wait_for(lambda: self.text().count(needle) >= count, timeout,
                 f"sensor never logged {needle!r} x{count}; log:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


@contextlib.contextmanager
def sensor(binary, platform, tmp, **env):
    s = Sensor(binary, platform, tmp, **env)
    try:
        yield s
    finally:
        s.stop()


def subscribe(port: int, count: int, timeout: int = 30) -> subprocess.Popen:
    """mosquitto_sub -C count: started before the sensor so that no message is missed."""
    sub = subprocess.Popen([need("mosquitto_sub"), "-h", "127.0.0.1", "-p", str(port), "-t", TOPIC, "-q", "1",
                            "-C", str(count), "-W", str(timeout)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)  # let it subscribe
    return sub


def received(sub: subprocess.Popen) -> list[dict]:
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 0, f"mosquitto_sub exited {sub.returncode}: {err.decode()}"
    return [json.loads(line) for line in out.decode().splitlines()]


def env_for(broker: Broker, **extra: str) -> dict[str, str]:
    return {"MQTT_BROKER": f"127.0.0.1:{broker.port}", "MQTT_TOPIC": TOPIC, "INTERVAL": "1",
            "MQTT_CLIENT_ID": "kb-sensor", **extra}


# -- every platform ---------------------------------------------------------------------------
@pytest.mark.parametrize("platform", TEST_PLATFORMS)
def test_publishes_qos1_readings(example_binary, broker, tmp_path, platform):
    runner(platform)
    binary = example_binary("sensor", platform)
    sub = subscribe(broker.port, 3)
    with sensor(binary, platform, tmp_path, **env_for(broker, MQTT_CLIENT_ID=f"kb-{platform[6:].replace('/', '')}",
                                                       SENSOR_PATH=str(tmp_path / "none"))) as s:
        msgs = received(sub)
        assert [m["seq"] for m in msgs] == [1, 2, 3]
        assert all(m["src"] == "sim" and 20.0 <= m["temp_c"] <= 24.0 for m in msgs)
        s.wait_log("published reading 3 (acknowledged")
        assert s.stop() == 0
    log = broker.text()
    cid = f"kb-{platform[6:].replace('/', '')}"
    assert f"Received PUBLISH from {cid} (d0, q1" in log          # QoS 1
    assert f"Received DISCONNECT from {cid}" in log                # graceful SIGTERM
    assert "stopped" in s.text()


# -- behaviour (amd64) ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sensor_bin(example_binary):
    return example_binary("sensor", "linux/amd64")


@pytest.mark.parametrize("content,expected", [(b"42125\n", 42.125), (b"-5500\n", -5.5), (b"7\n", 0.007)])
def test_reads_the_thermal_zone_file(sensor_bin, broker, tmp_path, content, expected):
    temp = tmp_path / "temp"
    temp.write_bytes(content)
    sub = subscribe(broker.port, 1)
    with sensor(sensor_bin, "linux/amd64", tmp_path, **env_for(broker, SENSOR_PATH=str(temp))):
        (msg,) = received(sub)
    assert msg["src"] == "thermal" and msg["temp_c"] == expected and msg["id"] == "kb-sensor"


def test_reconnects_with_exponential_backoff(sensor_bin, broker, tmp_path):
    with sensor(sensor_bin, "linux/amd64", tmp_path, **env_for(broker)) as s:
        s.wait_log("published reading 1")
        broker.stop()
        s.wait_log("retrying in 1 s")
        s.wait_log("retrying in 2 s")
        s.wait_log("retrying in 4 s", timeout=20)
        sub_after = None
        broker.start()
        wait_for(broker._listening, 10, "mosquitto did not restart")
        sub_after = subscribe(broker.port, 2)
        s.wait_log("connected to", count=2, timeout=30)
        msgs = received(sub_after)
        assert len(msgs) == 2 and msgs[0]["seq"] < msgs[1]["seq"]
        assert s.stop() == 0
    # the backoff was reset after the reconnect, and nothing crashed
    assert "retrying in 8 s" not in s.text() or "connected to" in s.text()


def test_backoff_is_capped(sensor_bin, tmp_path):
    port = free_port()   # nobody listens here
    with sensor(sensor_bin, "linux/amd64", tmp_path, MQTT_BROKER=f"127.0.0.1:{port}", INTERVAL="30",
                MQTT_BACKOFF_MAX="2") as s:
        s.wait_log("retrying in 2 s", count=3, timeout=20)
        assert "retrying in 4 s" not in s.text()
        assert s.stop() == 0


def test_retransmits_with_dup_when_no_puback(sensor_bin, broker, tmp_path):
    """Freeze the broker (SIGSTOP): no PUBACK comes, the sensor sends the PUBLISH again with DUP;
    once the broker thaws it acknowledges, and mosquitto logs the d1 retransmission."""
    with sensor(sensor_bin, "linux/amd64", tmp_path, **env_for(broker, INTERVAL="2", MQTT_RETRY="1")) as s:
        s.wait_log("published reading 1")
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            s.wait_log("sending it again (DUP)", timeout=15)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        s.wait_log("published reading 2 (acknowledged after", timeout=20)
    wait_for(lambda: "Received PUBLISH from kb-sensor (d1, q1" in broker.text(), 10,
             f"no DUP publish in the broker log:\n{broker.text()[-2000:]}")


def test_keepalive_pings(sensor_bin, broker, tmp_path):
    with sensor(sensor_bin, "linux/amd64", tmp_path, **env_for(broker, INTERVAL="3600", MQTT_KEEPALIVE="1")) as s:
        s.wait_log("published reading 1")
        wait_for(lambda: broker.text().count("Received PINGREQ from kb-sensor") >= 2, 15, "no PINGREQ")
        wait_for(lambda: broker.text().count("Sending PINGRESP to kb-sensor") >= 2, 15, "no PINGRESP")
        assert "no PINGRESP" not in s.text() and s.text().count("connected to") == 1


def test_dead_broker_detected_by_missing_pingresp(sensor_bin, broker, tmp_path):
    with sensor(sensor_bin, "linux/amd64", tmp_path, **env_for(broker, INTERVAL="3600", MQTT_KEEPALIVE="1")) as s:
        s.wait_log("published reading 1")
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            s.wait_log("no PINGRESP", timeout=15)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        s.wait_log("connected to", count=2, timeout=30)


@pytest.mark.parametrize("env,needle", [
    ({"MQTT_BROKER": "localhost:1883"}, "MQTT_BROKER"),
    ({"MQTT_BROKER": "1.2.3:1883"}, "MQTT_BROKER"),
    ({"MQTT_BROKER": "1.2.3.4:99999"}, "MQTT_BROKER"),
    ({"MQTT_BROKER": "1.2.3.4.5"}, "MQTT_BROKER"),
    ({"MQTT_BROKER": "256.1.1.1"}, "MQTT_BROKER"),
    ({"INTERVAL": "0"}, "INTERVAL"),
    ({"INTERVAL": "ten"}, "INTERVAL"),
    ({"MQTT_TOPIC": "a/#"}, "wildcards"),
    ({"MQTT_TOPIC": "t" * 300}, "MQTT_TOPIC"),
    ({"MQTT_CLIENT_ID": "c" * 100}, "MQTT_CLIENT_ID"),
    ({"MQTT_KEEPALIVE": "70000"}, "MQTT_KEEPALIVE"),
])
def test_bad_configuration(sensor_bin, env, needle):
    p = subprocess.run([sensor_bin], env=env, capture_output=True, timeout=10)
    assert p.returncode == 2 and needle.encode() in p.stderr, p.stderr


def test_refused_connack_and_non_mqtt_server(sensor_bin, tmp_path):
    """A server that is not a broker (it answers HTTP): the sensor gives up on it and backs off."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = srv.accept()
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with sensor(sensor_bin, "linux/amd64", tmp_path, MQTT_BROKER=f"127.0.0.1:{port}", INTERVAL="60") as s:
            s.wait_log("not an MQTT broker")
            s.wait_log("retrying in 2 s")
            assert s.stop() == 0
    finally:
        stop.set()
        t.join()
        srv.close()


# -- the image --------------------------------------------------------------------------------------
def test_image_within_budget_and_runs(broker, tmp_path):
    out = tmp_path / "out"
    report = json.loads(kilobox("build", "examples/sensor", "--json", "-o", f"oci:{out}:sensor", cwd=ROOT).stdout)
    assert report["ok"] is True
    for fig in report["platforms"]:
        assert fig["total_bytes"] <= 8 * 1024, fig
    amd64 = next(p for p in report["platforms"] if p["platform"] == "linux/amd64")
    assert amd64["total_with_index_bytes"] <= 8 * 1024, amd64
    rootfs = tmp_path / "rootfs"
    kilobox("unpack", f"oci:{out}:sensor", str(rootfs), "--platform", "linux/amd64", cwd=ROOT)
    sub = subscribe(broker.port, 1)
    with sensor(rootfs / "sensor", "linux/amd64", tmp_path, **env_for(broker)):
        (msg,) = received(sub)
    assert msg["seq"] == 1
