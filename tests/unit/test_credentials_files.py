"""Credentials files: the containers-auth.json search order, most specific keys, hostile files,
and what login/logout write. Every test runs with a private HOME and no auth environment."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from kilobox.errors import AuthError, NotFound, UsageError
from kilobox.formats import Options
from kilobox.formats.registry import credentials as C
from kilobox.formats.registry.auth import _repository_of
from kilobox.formats.registry.credentials import Credentials, auth_files, login_file, lookup

ENV = ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "DOCKER_CONFIG")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, no auth environment, and no /run/containers/UID file."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(C, "RUN_AUTH_FILE", str(tmp_path / "run-containers" / "{uid}" / "auth.json"))
    return h


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def write(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def auths(**entries: str) -> dict:
    """``auths(h="u:p")`` -> ``{"auths": {"h": {"auth": base64("u:p")}}}`` (keys with / via dict)."""
    return {"auths": {k: {"auth": b64(v)} for k, v in entries.items()}}


# -- where -----------------------------------------------------------------------------------
def test_search_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """containers-auth.json(5): the primary file, or the override in its place; then the read-only fallbacks."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    fallbacks = (str(home / ".config/containers/auth.json"), str(home / ".docker/config.json"))
    assert auth_files() == (str(tmp_path / "run/containers/auth.json"), *fallbacks)
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env.json"))
    assert auth_files() == (str(tmp_path / "env.json"), *fallbacks)
    assert auth_files(Options(docker_config="/x/only.json")) == ("/x/only.json", *fallbacks)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert auth_files()[1:] == (str(tmp_path / "cfg/containers/auth.json"), str(tmp_path / "dc/config.json"))


def test_search_order_without_runtime_dir(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset (or relative, which XDG says to ignore): skopeo's /run/containers/UID/auth.json."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", "relative/dir")
    monkeypatch.setenv("XDG_CONFIG_HOME", "also-relative")
    files = auth_files()
    assert files[0] == str(tmp_path / "run-containers" / str(os.getuid()) / "auth.json")
    assert files[1:] == (str(home / ".config/containers/auth.json"), str(home / ".docker/config.json"))


def test_duplicates_are_read_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(home / ".docker/config.json"))
    assert auth_files().count(str(home / ".docker/config.json")) == 1


def test_login_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert login_file() == str(home / ".docker/config.json")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "dc"))
    assert login_file() == str(tmp_path / "dc/config.json")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env.json"))
    assert login_file() == str(tmp_path / "env.json")
    assert login_file(Options(docker_config="/x/f.json")) == "/x/f.json"


def test_lookup_order(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    files = [write(tmp_path / "run/containers/auth.json", auths(**{"r.io": "run:2"})),
             write(home / ".config/containers/auth.json", auths(**{"r.io": "cfg:3"})),
             write(home / ".docker/config.json", auths(**{"https://r.io/v1/": "docker:4"}))]
    write(tmp_path / "env.json", auths(**{"r.io": "env:1"}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "env.json"))
    assert lookup("r.io").username == "env"                     # the override replaces the primary file
    monkeypatch.delenv("REGISTRY_AUTH_FILE")
    for f, want in zip(files, ["run", "cfg", "docker"]):
        assert lookup("r.io").username == want
        f.unlink()
    assert lookup("r.io") is None                               # every file gone: anonymous


def test_first_file_with_the_registry_wins(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without this registry passes on; an exact key in a later file does not beat an earlier one."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    write(tmp_path / "run/containers/auth.json", auths(**{"other.io": "o:o", "r.io": "run:1"}))
    write(home / ".docker/config.json", auths(**{"r.io/ns/app": "docker:2", "s.io": "s:3"}))
    assert lookup("r.io", None, "ns/app") == Credentials("run", "1")
    assert lookup("s.io") == Credentials("s", "3")


def test_authfile_replaces_the_primary_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--authfile stands where $XDG_RUNTIME_DIR/containers/auth.json would; the fallbacks still count."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    write(tmp_path / "run/containers/auth.json", auths(**{"s.io": "primary:0", "t.io": "t:0"}))
    write(home / ".docker/config.json", auths(**{"r.io": "docker:1"}))
    only = write(tmp_path / "only.json", auths(**{"s.io": "s:2"}))
    assert lookup("s.io", Options(docker_config=str(only))) == Credentials("s", "2")
    assert lookup("t.io", Options(docker_config=str(only))) is None
    assert lookup("r.io", Options(docker_config=str(only))) == Credentials("docker", "1")


# -- keys ------------------------------------------------------------------------------------
def test_most_specific_key_wins(home: Path, tmp_path: Path) -> None:
    opts = Options(docker_config=str(write(tmp_path / "a.json", auths(**{
        "r.io": "host:0", "r.io/ns": "ns:1", "r.io/ns/app": "app:2", "r.io/ns/app/deeper": "deep:3",
        "https://r.io/v1/": "legacy:4"}))))
    assert lookup("r.io", opts, "ns/app").username == "app"
    assert lookup("r.io", opts, "ns/app/deeper").username == "deep"
    assert lookup("r.io", opts, "ns/other").username == "ns"
    assert lookup("r.io", opts, "nsx/app").username == "host"      # components, not string prefixes
    assert lookup("r.io", opts, "ns/apps").username == "ns"
    assert lookup("r.io", opts).username == "host"                  # the exact host beats the URL key


def test_key_spellings(home: Path, tmp_path: Path) -> None:
    opts = Options(docker_config=str(write(tmp_path / "a.json", auths(**{
        "https://h:5000/v1/": "url:1", "Q.io/ns/": "q:2", "index.docker.io/library": "hub:3"}))))
    assert lookup("h:5000", opts, "any/thing").username == "url"     # a URL key names only its host
    assert lookup("q.io", opts, "ns/app").username == "q"
    assert lookup("q.io", opts, "other") is None
    assert lookup("docker.io", opts, "library/alpine").username == "hub"


def test_empty_specific_entry_falls_back(home: Path, tmp_path: Path) -> None:
    obj = auths(**{"r.io": "host:0"})
    obj["auths"]["r.io/ns"] = {}
    opts = Options(docker_config=str(write(tmp_path / "a.json", obj)))
    assert lookup("r.io", opts, "ns/app").username == "host"


def test_cred_helpers_in_auth_json(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "docker-credential-kbtest"
    exe.write_text('#!/bin/sh\nread server\necho "{\\"Username\\": \\"helped\\", \\"Secret\\": \\"$server\\"}"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    write(tmp_path / "run/containers/auth.json", {"credHelpers": {"r.io": "kbtest"}, **auths(**{"r.io": "no:no"})})
    assert lookup("r.io", None, "ns/app") == Credentials("helped", "r.io")


def test_repository_of_scopes() -> None:
    assert _repository_of(("repository:a/b:pull,push", "repository:c:pull")) == "a/b"
    assert _repository_of(("registry:catalog:*",)) == ""
    assert _repository_of(()) == ""


# -- hostile files ---------------------------------------------------------------------------
HOSTILE = {
    "not json": "{not json",
    "array": "[]",
    "string": '"x"',
    "deep": "[" * 100000,
    "deep object": '{"a":' * 100000,
    "bad utf-8": b'{"auths": {"\xff": {}}}',
    "huge number": '{"x": ' + "9" * 50000 + "}",
    "auths list": {"auths": []},
    "auths string": {"auths": "r.io"},
    "entry string": {"auths": {"r.io": "x"}},
    "entry list": {"auths": {"elsewhere.io": [1]}},
    "auth number": {"auths": {"r.io": {"auth": 5}}},
    "username object": {"auths": {"r.io": {"username": {}, "password": "p"}}},
    "credHelpers list": {"credHelpers": ["r.io"]},
    "credHelpers value": {"credHelpers": {"r.io": 1}},
    "credsStore number": {"credsStore": 7},
    "auth not base64": {"auths": {"r.io": {"auth": "%%%"}}},
    "auth without colon": {"auths": {"r.io": {"auth": b64("nocolon")}}},
}


@pytest.mark.parametrize("content", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_file_is_one_line_auth_error(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             content: object) -> None:
    f = tmp_path / "run/containers/auth.json"
    f.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        write(f, content)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    write(home / ".docker/config.json", auths(**{"r.io": "fine:1"}))      # never reached: the error stops
    with pytest.raises(AuthError) as ei:
        lookup("r.io", None, "ns/app")
    msg = str(ei.value)
    assert str(f) in msg and "\n" not in msg and len(msg) < 400 and ei.value.hint


def test_huge_file(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "huge.json"
    with open(f, "wb") as fh:
        fh.truncate(C.MAX_CONFIG + 1)                   # sparse: nothing is allocated
    with pytest.raises(AuthError, match="larger than") as ei:
        lookup("r.io", Options(docker_config=str(f)))
    assert str(f) in str(ei.value)


def test_not_a_regular_file(home: Path, tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(AuthError, match="not a regular file"):
        lookup("r.io", Options(docker_config=str(tmp_path / "dir.json")))
    os.mkfifo(tmp_path / "fifo.json")                   # no writer: a blocking open would hang forever
    with pytest.raises(AuthError, match="fifo.json: not a regular file"):
        lookup("r.io", Options(docker_config=str(tmp_path / "fifo.json")))


def test_missing_files_are_skipped(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(tmp_path / "nope" / "auth.json"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("")               # XDG_RUNTIME_DIR is a file: ENOTDIR, skipped too
    write(home / ".docker/config.json", auths(**{"r.io": "d:1"}))
    assert lookup("r.io") == Credentials("d", "1")


def test_empty_file_and_null_auths(home: Path, tmp_path: Path) -> None:
    assert lookup("r.io", Options(docker_config=str(write(tmp_path / "e.json", "")))) is None
    assert lookup("r.io", Options(docker_config=str(write(tmp_path / "n.json", {"auths": None})))) is None


# -- writing ---------------------------------------------------------------------------------
def test_save_creates_0600_and_parents(home: Path, tmp_path: Path) -> None:
    f = tmp_path / "new" / "dir" / "auth.json"
    C.save_login(str(f), "r.io:5000", Credentials("u", "p:w"))
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert json.loads(f.read_text()) == {"auths": {"r.io:5000": {"auth": b64("u:p:w")}}}
    assert lookup("r.io:5000", Options(docker_config=str(f))) == Credentials("u", "p:w")
    assert not [p for p in f.parent.iterdir() if p.name != "auth.json"]      # no temp file left


def test_save_keeps_every_other_key(home: Path, tmp_path: Path) -> None:
    before = {"credsStore": "desktop", "credHelpers": {"gcr.io": "gcloud"}, "HttpHeaders": {"X-A": "é"},
              "psFormat": "table {{.ID}}", "currentContext": "ctx", "nested": {"n": [1, 2.5, None, True]},
              "auths": {"other.io": {"auth": b64("o:o"), "email": "x@y"}, "r.io/ns": {"auth": b64("n:n")}}}
    f = write(tmp_path / "config.json", before)
    f.chmod(0o644)
    C.save_login(str(f), "r.io", Credentials("u", "p"))
    after = json.loads(f.read_text())
    assert after.pop("auths") == {**before["auths"], "r.io": {"auth": b64("u:p")}}
    assert after == {k: v for k, v in before.items() if k != "auths"}
    assert list(json.loads(f.read_text())) == list(before)          # key order kept too
    assert stat.S_IMODE(f.stat().st_mode) == 0o600


def test_save_updates_an_equivalent_key_in_place(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "config.json", {"auths": {"https://r.io/v1/": {"auth": b64("old:1")},
                                                   "R.io": {"auth": b64("old:2")}, "s.io": {}}})
    C.save_login(str(f), "r.io", Credentials("new", "3"))
    assert json.loads(f.read_text())["auths"] == {"https://r.io/v1/": {"auth": b64("new:3")}, "s.io": {}}


def test_save_through_a_symlink(home: Path, tmp_path: Path) -> None:
    target = write(tmp_path / "dotfiles" / "auth.json", {"auths": {}})
    link = tmp_path / "link.json"
    link.symlink_to(target)
    C.save_login(str(link), "r.io", Credentials("u", "p"))
    assert link.is_symlink() and "r.io" in json.loads(target.read_text())["auths"]


def test_save_refuses_a_broken_file(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "config.json", "{broken")
    with pytest.raises(AuthError, match="not valid JSON"):
        C.save_login(str(f), "r.io", Credentials("u", "p"))
    assert f.read_text() == "{broken"


def test_remove(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "config.json", {"credsStore": "x", "auths": {
        "r.io": {"auth": b64("a:1")}, "https://r.io": {"auth": b64("b:2")}, "r.io/ns": {"auth": b64("c:3")}}})
    assert C.remove_login(str(f), "r.io") is True
    assert json.loads(f.read_text()) == {"credsStore": "x", "auths": {"r.io/ns": {"auth": b64("c:3")}}}
    assert C.remove_login(str(f), "r.io") is False
    assert C.remove_login(str(tmp_path / "absent.json"), "r.io") is False
    assert not (tmp_path / "absent.json").exists()


@pytest.mark.parametrize("text,host,key", [
    ("127.0.0.1:5000", "127.0.0.1:5000", "127.0.0.1:5000"),
    ("https://Quay.io/", "quay.io", "quay.io"),
    ("http://h:5000/v1/", "h:5000", "h:5000"),
    ("quay.io/ns/app", "quay.io", "quay.io/ns/app"),
    ("quay.io/ns/", "quay.io", "quay.io/ns"),
    ("docker.io", "docker.io", "https://index.docker.io/v1/"),
    ("index.docker.io", "docker.io", "https://index.docker.io/v1/"),
    ("docker.io/me", "docker.io", "docker.io/me"),
    ("[::1]:5000", "[::1]:5000", "[::1]:5000"),
])
def test_login_key(text: str, host: str, key: str) -> None:
    assert C.login_key(text) == (host, key)


@pytest.mark.parametrize("text", ["", "/", "ftp://h", "h o", "h/Upper", "h/a b", "h/-x", "h\x00", "h/" + "a" * 300,
                                  "us er@h"])
def test_login_key_invalid(text: str) -> None:
    with pytest.raises(UsageError):
        C.login_key(text)


@pytest.mark.parametrize("user,pw", [("", "p"), ("a:b", "p"), ("u", "")])
def test_login_refuses_bad_input_before_any_request(home: Path, user: str, pw: str) -> None:
    with pytest.raises(UsageError):
        C.login("127.0.0.1:9", user, pw)
    assert not (home / ".docker").exists()


def test_login_refuses_a_broken_file_before_any_request(home: Path, tmp_path: Path) -> None:
    f = write(tmp_path / "auth.json", {"auths": []})
    with pytest.raises(AuthError, match="auth.json: 'auths' must be"):   # not a connection error to port 9
        C.login("127.0.0.1:9", "u", "p", Options(docker_config=str(f)))


def test_logout_not_found_names_the_other_file(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    other = write(tmp_path / "run/containers/auth.json", auths(**{"r.io": "u:p"}))
    with pytest.raises(NotFound, match=r"not logged in to r\.io") as ei:
        C.logout("r.io")
    assert str(other) in (ei.value.hint or "")
    with pytest.raises(NotFound) as ei:
        C.logout("s.io")
    assert ei.value.hint is None
    assert C.logout("r.io", Options(docker_config=str(other))) == ("r.io", str(other))
    assert json.loads(other.read_text()) == {"auths": {}}
