"""stracelog.parse: real strace shapes seen from containers, and hostile input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kilobox.slim.stracelog import _split_args, _unescape, parse

# runc init after `create`, attached from outside: host paths before the entrypoint's execve
RUNC = r'''5294  openat(AT_FDCWD</>, "/proc/self/fd/5", O_WRONLY|O_CLOEXEC) = 3</tmp/state/runtime/runc/c1/exec.fifo>
5294  statx(5</tmp/state/runtime/crun/c1/seccomp.bpf>, "", AT_STATX_DONT_SYNC, STATX_SIZE, {stx_mode=S_IFREG|0700, ...}) = 0
5294  openat(AT_FDCWD</>, "/etc/host-only.conf", O_RDONLY) = 4</etc/host-only.conf>
5294  execve("/usr/sbin/nginx", ["/usr/sbin/nginx", "-e", "stderr"], 0xc0001a6048 /* 2 vars */ <unfinished ...>
5297  +++ exited with 0 +++
5294  <... execve resumed>)             = 0
5294  access("/etc/ld.so.preload", R_OK) = -1 ENOENT (No such file or directory)
5294  openat(AT_FDCWD</>, "/lib/x86_64-linux-gnu/libc.so.6", O_RDONLY|O_CLOEXEC) = 3</usr/lib/x86_64-linux-gnu/libc.so.6>
5294  newfstatat(3</usr/lib/x86_64-linux-gnu/libc.so.6>, "", {st_mode=S_IFREG|0755, st_size=1926232, ...}, AT_EMPTY_PATH) = 0
5294  openat(AT_FDCWD</>, "/etc/localtime", O_RDONLY|O_CLOEXEC) = 3</usr/share/zoneinfo/Etc/UTC>
5294  mkdir("/tmp/client_body", 0700)   = 0
5294  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, child_tidptr=0x7f) = 6 /* 5307 in strace's PID NS */
5307  newfstatat(AT_FDCWD</>, "/var/www/html/index.html", {st_mode=S_IFREG|0644, st_size=71, ...}, 0) = 0
5294  --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=0, si_uid=0} ---
5307  +++ exited with 0 +++
5294  +++ killed by SIGKILL +++
'''


def test_runtime_init_noise_is_ignored_until_the_entrypoint_runs():
    t = parse(RUNC.splitlines(), after_exec=True)
    assert "/etc/host-only.conf" not in t.found and not any(p.startswith("/tmp/state") for p in t.found)
    assert t.executed == {"/usr/sbin/nginx"}
    assert {"/lib/x86_64-linux-gnu/libc.so.6", "/etc/localtime", "/var/www/html/index.html"} <= t.found
    assert "/etc/ld.so.preload" in t.missing
    assert t.first_pid == 5294 and t.exit_code == "SIGKILL" and t.exits[5307] == "0"
    # without the gate, the runtime's own paths show up
    assert "/etc/host-only.conf" in parse(RUNC.splitlines()).found


def test_failed_exec_of_the_entrypoint_is_kept():
    log = '7  execve("/app/server", ["/app/server"], 0x0 /* 1 var */) = -1 ENOENT (No such file or directory)\n'
    t = parse(log.splitlines(), after_exec=True)
    assert t.missing == {"/app/server"} and not t.executed


# busybox httpd → CGI: the grandchild's lines come BEFORE its parent's vfork returns
CGI = r'''2536  execve("/bin/busybox", ["/bin/busybox", "httpd"], 0x56 /* 2 vars */) = 0
2536  chdir("/srv/www")                 = 0
2536  clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 2 /* 2580 in strace's PID NS */
2580  newfstatat(AT_FDCWD</srv/www>, "cgi-bin/hello", {st_mode=S_IFREG|0755, st_size=78, ...}, 0) = 0
2580  vfork( <unfinished ...>
2593  chdir("cgi-bin")                  = 0
2593  execve("hello", ["hello"], 0x55 /* 16 vars */ <unfinished ...>
2580  <... vfork resumed>)              = 3 /* 2593 in strace's PID NS */
2593  <... execve resumed>)             = 0
2593  getcwd("/srv/www/cgi-bin", 4096)  = 17
2593  openat(AT_FDCWD</srv/www/cgi-bin>, "/srv/greeting.txt", O_RDONLY) = 3</srv/greeting.txt>
2593  vfork( <unfinished ...>
2595  execve("/usr/bin/tr", ["tr", "a-z", "A-Z"], 0x55 /* 17 vars */ <unfinished ...>
2593  <... vfork resumed>)              = 4 /* 2595 in strace's PID NS */
2595  <... execve resumed>)             = 0
2595  stat("rel.txt", 0x7ffe) = 0
'''


def test_children_inherit_cwd_even_when_they_speak_first():
    t = parse(CGI.splitlines(), after_exec=True)
    assert "/srv/www/cgi-bin/hello" in t.executed
    assert "/usr/bin/tr" in t.executed and "/srv/greeting.txt" in t.found
    assert "/srv/www/cgi-bin/rel.txt" in t.found            # tr inherited the CGI's cwd
    assert "/cgi-bin" not in t.found and "/srv/www/hello" not in t.found


def test_dirfds_escapes_and_results_at_the_end_of_the_line():
    log = r'''9  execve("/x", ["/x"], 0x0 /* 0 vars */) = 0
9  newfstatat(3</etc/nginx>, "conf.d/a.conf", {st_mode=S_IFREG|0644, ...}, 0) = 0
9  openat(AT_FDCWD</var/www>, "rel\"q", O_RDONLY) = 4</var/www/rel"q>
9  openat(AT_FDCWD</>, "/srv/caf\303\251", O_RDONLY) = 5</srv/café>
9  openat(AT_FDCWD</>, "/srv/x) = 0", O_RDONLY) = -1 ENOENT (No such file or directory)
9  openat(AT_FDCWD</>, "/srv/bad\377", O_RDONLY) = 6</srv/bad\377>
9  openat(7, "lost", O_RDONLY) = 8
9  fchdir(5</opt/app>) = 0
9  stat("here", {st_mode=S_IFREG, ...}) = 0
9  rename("/tmp/a", "/data/b") = 0
9  execve("/bin/sh", ["sh"], 0x0 /* 0 vars */) = -1 EACCES (Permission denied)
9  readlinkat(AT_FDCWD</opt/app>, "link", "target", 4096) = 6
'''
    t = parse(log.splitlines())
    assert "/etc/nginx/conf.d/a.conf" in t.found
    assert '/var/www/rel"q' in t.found
    assert "/srv/café" in t.found
    assert "/srv/x) = 0" in t.missing
    assert "/srv/bad\udcff" in t.found                       # undecodable byte kept as a surrogate
    assert not any(p.endswith("/lost") for p in t.found)    # a dirfd strace could not name
    assert "/opt/app/here" in t.found and "/opt/app/link" in t.found
    assert "/tmp" in t.found and "/data" in t.found and "/data/b" not in t.found
    assert "/bin/sh" in t.found and "/bin/sh" not in t.executed


def test_found_beats_missing():
    log = '''1  stat("/a", 0x1) = -1 ENOENT (No such file or directory)
1  stat("/a", {st_mode=S_IFREG, ...}) = 0
'''
    t = parse(log.splitlines())
    assert "/a" in t.found and "/a" not in t.missing


def test_hostile_lines_are_skipped():
    bad = ["", "garbage", "12", "12 ", "x openat(", "99 openat(AT_FDCWD</>, \"/a", "99 <... openat resumed>) = 0",
           "1 openat(AT_FDCWD</>, \"/" + "a" * 70000 + "\", O_RDONLY) = 3",
           '1 openat(AT_FDCWD</>, "/\\', "1 ) = 0", '1 stat("/nul\\0byte", {}) = 0', "[pid 5] stat(\"/ok\", {}) = 0", "1 clone() = abc"]
    t = parse(bad)
    assert t.found == {"/ok"}


def test_split_args_and_unescape():
    assert _split_args('AT_FDCWD</x>, "a,b", [1, 2], {k=v, w=z}) = 0') == ["AT_FDCWD</x>", '"a,b"', "[1, 2]",
                                                                           "{k=v, w=z}"]
    assert _unescape(r"a\nb\"c") == 'a\nb"c'
    assert _unescape("\\x") == "\\x"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list('0123456789 ()<>",=.-/\\[]{}ENOTabcxyz_+?*\u00e9')),
                        max_size=120), max_size=30))
def test_parse_never_raises(lines):
    parse(lines, after_exec=True)
    parse(["1 " + ln for ln in lines])
