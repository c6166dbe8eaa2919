"""The issue's registry command lines, run as a user would (subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.tools import kilobox

pytestmark = pytest.mark.integration


@pytest.fixture
def out_layout(tmp_path: Path) -> Path:
    pytest.importorskip("kilobox.formats.layout")
    from kilobox.testing import random_image, write_image
    write_image(random_image(2, 2048, seed=5), f"oci:{tmp_path / 'out'}:hello")
    return tmp_path / "out"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"KILOBOX_CACHE": str(tmp_path / "store"), "DOCKER_CONFIG": str(tmp_path / "no-docker"),
            "XDG_RUNTIME_DIR": str(tmp_path / "no-run"), "XDG_CONFIG_HOME": str(tmp_path / "no-config")}


def test_push_pull_digest_tags(registry, out_layout: Path, tmp_path: Path, env: dict[str, str]) -> None:
    host = registry.host
    pushed = kilobox("copy", "oci:./out:hello", f"docker://{host}/demo/hello:1", cwd=tmp_path, env=env).stdout.strip()
    assert pushed.startswith("sha256:")
    pulled = kilobox("copy", f"{host}/demo/hello:1", "oci-archive:hello.tar", cwd=tmp_path, env=env).stdout.strip()
    assert pulled == pushed and (tmp_path / "hello.tar").stat().st_size > 0
    assert kilobox("digest", f"{host}/demo/hello:1", env=env).stdout.strip() == pushed
    assert kilobox("tags", f"{host}/demo/hello", env=env).stdout.split() == ["1"]
    assert json.loads(kilobox("tags", "--json", f"{host}/demo/hello", env=env).stdout) == ["1"]
    # a second push moves no blob
    again = kilobox("copy", "oci:./out:hello", f"docker://{host}/demo/hello:2", cwd=tmp_path, env=env)
    assert again.stdout.strip() == pushed


def test_username_password_stdin(registry_basic, out_layout: Path, tmp_path: Path, env: dict[str, str]) -> None:
    host = registry_basic.host
    kilobox("copy", "--username", registry_basic.username, "--password-stdin", "oci:./out:hello",
            f"docker://{host}/sec/hello:1", cwd=tmp_path, env=env, input=f"{registry_basic.password}\n".encode())
    denied = kilobox("tags", f"{host}/sec/hello", env=env, check=False)
    assert denied.returncode == 6 and "401" in denied.stderr and "Traceback" not in denied.stderr
    wrong = kilobox("tags", "-u", registry_basic.username, "--password-stdin", f"{host}/sec/hello",
                    env=env, input=b"wrong\n", check=False)
    assert wrong.returncode == 6
    ok = kilobox("tags", "-u", registry_basic.username, "--password-stdin", f"{host}/sec/hello",
                 env=env, input=f"{registry_basic.password}\n".encode())
    assert ok.stdout.split() == ["1"]


def test_errors_are_one_line(registry, env: dict[str, str]) -> None:
    missing = kilobox("digest", f"{registry.host}/demo/none:1", env=env, check=False)
    assert missing.returncode == 3 and "404" in missing.stderr and "demo/none" in missing.stderr
    assert "Traceback" not in missing.stderr
    from tests.helpers.tools import free_port
    down = kilobox("tags", f"127.0.0.1:{free_port()}/demo/x", env=env, check=False)
    assert down.returncode == 5 and "cannot connect" in down.stderr
