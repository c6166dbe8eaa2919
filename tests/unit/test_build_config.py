"""kilobox.toml parsing and validation: every bad case names its key (and the file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kilobox.build.config import (DEFAULT_USER, load_config, parse_config, parse_platform, parse_port,
                                  parse_size, user_ids)
from kilobox.errors import BuildError
from kilobox.oci import Platform


@pytest.fixture
def proj(tmp_path: Path):
    """Factory: write kilobox.toml (+ main.c) into a fresh project dir and load it."""
    (tmp_path / "main.c").write_text("int main(void){return 0;}\n")

    def make(text: str) -> Path:
        (tmp_path / "kilobox.toml").write_text(text)
        return tmp_path
    return make


MINIMAL = 'name = "app"\nlang = "c"\nsources = ["main.c"]\n'


def test_minimal_defaults(proj) -> None:
    cfg = load_config(proj(MINIMAL))
    assert cfg.name == "app" and cfg.tag == "latest" and cfg.lang == "c"
    assert cfg.user == DEFAULT_USER == "65532:65532"
    assert cfg.platforms == (Platform("linux", "amd64"),)
    assert cfg.entrypoint == ("/app",) and cfg.binary_path == "/app"
    assert cfg.cmd is None and cfg.max_size is None and cfg.git_annotations
    assert cfg.sources[0].name == "main.c" and cfg.sources[0].is_absolute()
    assert cfg.path is not None and cfg.path.name == "kilobox.toml"


def test_full_config(proj, tmp_path: Path) -> None:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text("hi")
    cfg = load_config(proj(MINIMAL + '''
tag = "1.2"
cflags = "-DX=1 -Wall"
ldflags = ["-Wl,-z,norelro"]
freestanding = true
entrypoint = ["/bin/app", "--serve"]
cmd = "--port 8080"
env = { PORT = "8080", N = 3 }
workdir = "/www"
user = "1000:1000"
ports = [8080, "53/udp"]
labels = { "org.example.team" = "core" }
annotations = { "org.opencontainers.image.title" = "App" }
platforms = ["linux/amd64", "linux/arm64/v8", "linux/arm"]
max_size = "16KiB"
ca_certs = true
timezone = ["Europe/Berlin", "UTC"]
passwd = true
git_annotations = false

[[files]]
source = "www"
target = "/www/"
mode = "0644"
owner = "1000:1000"
'''))
    assert cfg.cflags == ("-DX=1", "-Wall") and cfg.ldflags == ("-Wl,-z,norelro",)
    assert cfg.entrypoint == ("/bin/app", "--serve") and cfg.binary_path == "/bin/app"
    assert cfg.cmd == ("--port", "8080")
    assert cfg.env == {"PORT": "8080", "N": "3"}
    assert cfg.ports == ("8080/tcp", "53/udp")
    assert [str(p) for p in cfg.platforms] == ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    assert cfg.max_size == 16384 and cfg.timezone == ("Europe/Berlin", "UTC") and cfg.passwd and cfg.ca_certs
    f = cfg.files[0]
    assert f.target == "/www" and f.mode == 0o644 and (f.uid, f.gid) == (1000, 1000)
    assert not cfg.git_annotations


def test_binary_forms(proj, tmp_path: Path) -> None:
    (tmp_path / "app-amd64").write_bytes(b"x")
    (tmp_path / "app-arm64").write_bytes(b"x")
    cfg = load_config(proj('name = "app"\nbinary = "app-amd64"\n'))
    assert list(cfg.binary) == ["*"] and cfg.lang == ""
    cfg = load_config(proj('name = "app"\nplatforms = ["linux/amd64", "linux/arm64"]\n'
                           '[binary]\n"linux/amd64" = "app-amd64"\n"linux/arm64" = "app-arm64"\n'))
    assert sorted(cfg.binary) == ["linux/amd64", "linux/arm64"]


def test_name_defaults_to_directory(tmp_path: Path) -> None:
    d = tmp_path / "My_Service"
    d.mkdir()
    (d / "main.zig").write_text("")
    (d / "kilobox.toml").write_text('lang = "zig"\nsources = ["main.zig"]\n')
    assert load_config(d).name == "my_service"


BAD = [
    ('nmae = "x"\n' + MINIMAL, "nmae", "did you mean 'name'"),
    ('name = "App!"\nlang = "c"\nsources = ["main.c"]\n', "name", "invalid image name"),
    (MINIMAL + 'tag = "a b"\n', "tag", "invalid tag"),
    ('name = "a"\nlang = "rust"\nsources = ["main.c"]\n', "lang", "unsupported language"),
    ('name = "a"\nsources = ["main.c"]\n', "lang", "missing"),
    ('name = "a"\nlang = "c"\n', "sources", "missing"),
    ('name = "a"\nlang = "c"\nsources = []\n', "sources", "missing or empty"),
    ('name = "a"\nlang = "c"\nsources = ["nope.c"]\n', "sources[0]", "file not found"),
    ('name = "a"\nlang = "c"\nsources = ["main.c", 3]\n', "sources[1]", "expected a string"),
    (MINIMAL + 'platforms = ["linux/amd64", "linux/arm64", "linux/foo"]\n', "platforms[2]", "unknown platform 'linux/foo'"),
    (MINIMAL + 'platforms = ["linux/amd64", "linux/amd64"]\n', "platforms[1]", "listed twice"),
    (MINIMAL + 'platforms = []\n', "platforms", "non-empty"),
    (MINIMAL + 'max_size = "16 furlongs"\n', "max_size", "invalid size"),
    (MINIMAL + 'max_size = 0\n', "max_size", "positive"),
    (MINIMAL + 'user = "bob:x"\n', "user", "invalid user"),
    (MINIMAL + 'ports = ["http"]\n', "ports[0]", "invalid port"),
    (MINIMAL + 'ports = [70000]\n', "ports[0]", "invalid port"),
    (MINIMAL + 'ports = "8080"\n', "ports", "expected a list"),
    (MINIMAL + 'env = { "1X" = "y" }\n', "env.1X", "invalid variable name"),
    (MINIMAL + 'env = { X = [1] }\n', "env.X", "expected a string"),
    (MINIMAL + 'labels = { a = 1 }\n', "labels.a", "expected a string"),
    (MINIMAL + 'workdir = "rel"\n', "workdir", "absolute"),
    (MINIMAL + 'entrypoint = "app"\n', "entrypoint", "absolute path"),
    (MINIMAL + 'entrypoint = ["/../etc/x"]\n', "entrypoint", "without '..'"),
    (MINIMAL + 'entrypoint = []\n', "entrypoint", "must not be empty"),
    (MINIMAL + 'freestanding = "yes"\n', "freestanding", "true or false"),
    (MINIMAL + 'timezone = "UTC"\n', "timezone", "expected true/false"),
    (MINIMAL + 'timezone = ["../etc/passwd"]\n', "timezone[0]", "invalid time zone"),
    (MINIMAL + 'binary = "main.c"\n', "binary", "either 'binary' or 'lang'"),
    ('name = "a"\nbinary = "nope"\n', "binary", "file not found"),
    ('name = "a"\nbinary = 3\n', "binary", "expected a path"),
    ('name = "a"\n[binary]\n"linux/arm64" = "main.c"\n', "binary.linux/arm64", "not in platforms"),
    ('name = "a"\n[binary]\n"linux/zz" = "main.c"\n', "binary.linux/zz", "unknown platform"),
    ('name = "a"\nbinary = "main.c"\ncflags = ["-O2"]\n', "cflags", "only applies"),
    (MINIMAL + 'files = "x"\n', "files", "array of tables"),
    (MINIMAL + '[[files]]\ntarget = "/x"\n', "files[0].source", "missing"),
    (MINIMAL + '[[files]]\nsource = "main.c"\n', "files[0].target", "missing"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "x"\n', "files[0].target", "absolute path"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "/"\n', "files[0].target", "image root"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "/x"\nmode = "rw"\n', "files[0].mode", "invalid mode"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "/x"\nmode = 0o17777\n', "files[0].mode", "invalid mode"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "/x"\nowner = "me"\n', "files[0].owner", "invalid owner"),
    (MINIMAL + '[[files]]\nsource = "main.c"\ntarget = "/x"\nmod = 1\n', "files[0].mod", "did you mean 'mode'"),
    (MINIMAL + '[[files]]\nsource = "gone"\ntarget = "/x"\n', "files[0].source", "file not found"),
]


@pytest.mark.parametrize("text,key,msg", BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_bad_config_names_key_and_file(proj, text: str, key: str, msg: str) -> None:
    d = proj(text)
    with pytest.raises(BuildError) as ei:
        load_config(d)
    text_ = ei.value.message
    assert text_.startswith(f"{d / 'kilobox.toml'}: key '{key}': "), text_
    assert msg in text_


def test_invalid_toml_gives_line(proj) -> None:
    d = proj('name = "a"\nlang = "c"\nsources = ["main.c"\nx = 1\n')
    with pytest.raises(BuildError) as ei:
        load_config(d)
    assert "invalid TOML" in ei.value.message and "line 4" in ei.value.message
    assert str(d / "kilobox.toml") in ei.value.message
    d = proj('name = "a"\nlang = "c"\nsources = ["main.c"\n')
    with pytest.raises(BuildError, match=r"invalid TOML: .*\(at line 3, the end of the file\)"):
        load_config(d)


@pytest.mark.parametrize("raw", [b"\xff\xfe garbage", b'name = "\x00"\n', b"[[[", b"a = " + b"[" * 5000])
def test_hostile_toml(proj, raw: bytes) -> None:
    d = proj("")
    (d / "kilobox.toml").write_bytes(raw)
    with pytest.raises(BuildError):
        load_config(d)


def test_missing_project_file(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no kilobox.toml"):
        load_config(tmp_path)


def test_file_path_accepted(proj) -> None:
    d = proj(MINIMAL)
    assert load_config(d / "kilobox.toml").name == "app"


@pytest.mark.parametrize("text,n", [("16KiB", 16384), ("1KB", 1000), ("1024", 1024), (1024, 1024),
                                    ("1 KiB", 1024), ("1.5KiB", 1536), ("2MiB", 2 << 20), ("1M", 1 << 20),
                                    ("8kib", 8192), ("100B", 100), ("1GB", 10 ** 9)])
def test_parse_size(text, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "KiB", "-1", "1.2.3KiB", "1 TiB", "1e3", True, None, 0, -5, "0"])
def test_parse_size_bad(bad) -> None:
    with pytest.raises(BuildError):
        parse_size(bad)


def test_platform_helpers() -> None:
    assert str(parse_platform("linux/arm64/v8")) == "linux/arm64"
    assert str(parse_platform("linux/arm")) == "linux/arm/v7"
    assert str(parse_platform("linux/x86_64")) == "linux/amd64"
    for bad in ["linux", "windows/amd64", "linux/foo", "", 5]:
        with pytest.raises(BuildError):
            parse_platform(bad)
    assert parse_port(80) == "80/tcp" and parse_port("53/udp") == "53/udp"
    assert user_ids("65532:65532") == (65532, 65532) and user_ids("1000") == (1000, 1000)
    assert user_ids("nonroot") == (65532, 65532)


def test_parse_config_direct(tmp_path: Path) -> None:
    (tmp_path / "m.zig").write_text("")
    cfg = parse_config({"name": "z", "lang": "zig", "sources": ["m.zig"]}, "inline", tmp_path)
    assert cfg.lang == "zig"
    with pytest.raises(BuildError, match=r"^inline: key 'lang'"):
        parse_config({"name": "z", "lang": 1, "sources": ["m.zig"]}, "inline", tmp_path)


# -- hostile input: whatever the table holds, only BuildError comes out ------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from kilobox.build.config import KEYS  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(allow_nan=True),
                     st.text(max_size=30), st.sampled_from(["main.c", "/app", "linux/amd64", "16KiB", "8080/tcp",
                                                           "65532:65532", "c", "zig", "", "..", "/.."]))
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                       max_leaves=12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(list(KEYS) + ["junk", "files"]), _values, max_size=8))
def test_any_table_gives_a_config_or_build_error(tmp_path_factory, data) -> None:
    base = tmp_path_factory.getbasetemp()
    (base / "main.c").touch()
    try:
        parse_config(data, "fuzz.toml", base, "fuzz")
    except BuildError as e:
        assert e.message.startswith("fuzz.toml: ")
