"""Bad input gets one line on stderr and the exit code of its family."""

from __future__ import annotations

import pytest

from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration


def _fails(code: int, *args: str, env: dict | None = None, match: str = "") -> str:
    r = kilobox(*args, check=False, env=env)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("kilobox: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert match in r.stderr
    assert "Traceback" not in r.stderr
    return r.stderr


def test_unknown_image(run_state, tmp_path):
    _fails(3, "run", f"oci:{tmp_path}/nowhere:x", match="does not exist")


def test_unknown_tag(run_state, probe_image):
    _fails(3, "run", probe_image.rsplit(":", 1)[0] + ":nope", match="no image tagged 'nope'")


def test_no_runtime_installed(run_state, probe_image, tmp_path):
    err = _fails(127, "run", "--rm", probe_image, env={"PATH": str(tmp_path)})
    assert "apt-get install -y crun" in err


def test_no_runtime_installed_warm(run_state, probe_image, tmp_path):
    kilobox("run", "--rm", probe_image, "exit=0")            # the bundle is cached: the warm path
    err = _fails(127, "run", "--rm", probe_image, "exit=0", env={"PATH": str(tmp_path)})
    assert "apt-get install -y crun" in err
    assert kilobox("ps", "-q").stdout == ""


def test_runtime_that_cannot_start(run_state, probe_image, tmp_path):
    bad = tmp_path / "crun"
    bad.write_text("#!/nonexistent/interpreter\n")
    bad.chmod(0o755)
    for _ in ("cold", "warm"):
        _fails(125, "run", "--rm", "--runtime", str(bad), probe_image, "exit=0", match=f"cannot start {bad}: ")
        assert kilobox("ps", "-q").stdout == ""


def test_unknown_runtime(run_state, probe_image):
    _fails(127, "run", "--rm", "--runtime", "youki-nope", probe_image, match="youki-nope is not installed")


def test_binary_missing_from_the_image(run_state, probe_image):
    _fails(125, "run", "--rm", "--entrypoint", "/bin/sh", probe_image, match="/bin/sh: executable file not found")
    _fails(125, "run", "--rm", "-d", "--entrypoint", "nothere", probe_image, match="not found in the image")
    assert kilobox("ps", "-q").stdout == ""


def test_root_is_refused_by_default(run_state, make_image, probe_bin):
    img = make_image({"/probe": probe_bin}, {"Entrypoint": ["/probe"]}, tag="root", name="rootimg")
    err = _fails(125, "run", "--rm", img, match="would run as root")
    assert "--user 0" in err
    assert kilobox("run", "--rm", "--user", "0", img, "exit=0").returncode == 0


@pytest.mark.parametrize("args, match", [
    (("--publish", "80"), "expected [IP:]HOSTPORT:CONTAINERPORT"),
    (("--publish", "8080:8080", "--network", "host"), "no effect with --network host"),
    (("--memory", "lots"), "cannot parse size"),
    (("--cap-add", "CAP_WHATEVER"), "unknown capability"),
    (("--name", "../x"), "invalid container name"),
    (("--tmpfs", "relative"), "absolute path"),
])
def test_bad_options(run_state, probe_image, args, match):
    _fails(2, "run", "--rm", *args, probe_image, match=match)


def test_no_command(run_state, make_image, probe_bin):
    img = make_image({"/probe": probe_bin}, {"User": "65532"}, tag="nocmd", name="nocmd")
    _fails(2, "run", "--rm", img, match="no command to run")


def test_unknown_container_commands(run_state):
    _fails(3, "stop", "ghost", match="no such container: ghost")
    _fails(3, "rm", "ghost", match="no such container: ghost")



def test_foreign_architecture_is_refused(run_state, tmp_path, probe_bin):
    from kilobox.layers import Entry
    from tests.fixtures.runtime import write_oci_image
    img = write_oci_image(tmp_path / "arm", [Entry("probe", data=probe_bin.read_bytes(), mode=0o755)],
                          {"Entrypoint": ["/probe"], "User": "65532"}, tag="arm", arch="arm64")
    _fails(125, "run", "--rm", img, match="linux/arm64 image; this host runs linux/amd64")
