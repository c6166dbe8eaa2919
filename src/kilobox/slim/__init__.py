"""Slim: turn a fat image into a micro-container that still does its job, and prove it.

::

    from kilobox.slim import slim
    r = slim("oci:fat:nginx", "oci:slim:nginx", probe_url="http://127.0.0.1:8080/",
             network="host", tmpfs=["/tmp"])
    r.ok, r.ratio, r.after["bytes"], r.audit["after"]["shells"]

1. **trace** (:mod:`.trace`): the fat image runs under the real runtime with ``kilobox run``'s
   bundle and options, strace attached from outside; the probe must succeed, else nothing is slimmed;
2. **plan** (:mod:`.plan`, :mod:`.rules`, :mod:`.elfdeps`): paths seen at run time, the ELF closure
   of everything executed and of the entrypoint, what the config names, rules, ``include`` globs,
   minus ``exclude`` globs;
3. **assemble** (:mod:`.assemble`): one layer, the same config, the source digest annotated;
4. **verify**: ``kilobox run`` of the slim image with the same options and the probe; on failure a
   traced run names the ENOENT paths, and ``auto_fix`` adds them and tries again;
5. **report** (:mod:`.report`): text and JSON, with the audit delta.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import PolicyViolation, RunError, UsageError
from .report import Attempt, KeptPath, SlimReport, render_text

Progress = Callable[[str], None]


def slim(src: str, dst: str, *, probe_url: str | None = None, probe_cmd: str | None = None,
         network: str = "none", tmpfs: Sequence[str] = (), user: str | None = None, env: Sequence[str] = (),
         include: Sequence[str] = (), exclude: Sequence[str] = (), auto_fix: bool = False,
         platform: str | None = None, options: Any = None, probe_timeout: float = 30.0, max_fixes: int = 3,
         runtime: str | None = None, audit: bool = True, progress: Progress | None = None) -> SlimReport:
    """Slim image *src* into *dst* (any locations kilobox reads and writes); see the module docstring.

    Raises UsageError (no entrypoint/cmd, bad options), ToolMissing (strace, a runtime),
    PolicyViolation (the probe never succeeds on the fat image: nothing is slimmed). A slim image
    that fails its probe is not written: the report says so (``ok`` False) and names what is missing.
    With *auto_fix*, up to *max_fixes* rounds add those paths (even ones *exclude* removed) and retry.
    The run options (*network*, *tmpfs*, *user*, *env*) are not baked into the slim image: run it
    with the same ones.
    """
    from ..image import open_image
    from ..run import make_options
    from ..run.bundle import local_image, make_bundle
    from ..run.rootfs import ensure_rootfs
    from ..run.spec import command, merge_env
    from ..store import Store
    from .probe import Probe
    from .trace import strace_path, traced_run

    say = progress or (lambda _msg: None)
    t_start = time.monotonic()
    timings: dict[str, float] = {}
    strace_path()
    if probe_url and probe_cmd:
        raise UsageError("give --probe or --probe-cmd, not both")
    if probe_url and not probe_url.startswith(("http://", "https://")):
        raise UsageError(f"--probe {probe_url!r} is not an http(s) URL", hint="e.g. --probe http://127.0.0.1:8080/")
    for pat in list(include) + list(exclude):
        if not pat.startswith("/") or "\0" in pat:
            raise UsageError(f"glob {pat!r} must be an absolute image path",
                             hint="e.g. --include '/usr/share/zoneinfo/**'")
    opts = make_options(network=network, tmpfs=list(tmpfs), user=user, env=list(env), environ=dict(os.environ))
    probe = Probe(url=probe_url, cmd=probe_cmd, timeout=probe_timeout)
    store = Store()
    local, _stamp = local_image(src, platform=platform, options=options, store=store)
    work = store.temp_dir("slim.")
    try:
        with open_image(local, platform, options) as img:
            cfg = img.config.config
            if not (cfg.get("Entrypoint") or cfg.get("Cmd")):
                raise UsageError(f"{src} has no Entrypoint or Cmd: there is nothing to run and trace",
                                 hint="slim needs an image that runs something (set ENTRYPOINT or CMD)")
            say(f"unpacking {src}")
            rootfs = ensure_rootfs(img, store)
            meta = make_bundle(rootfs, cfg, opts, image=src, digest=img.digest, store=store)
            argv = command(cfg, opts)
            run_env = merge_env(list(cfg.get("Env") or []), opts.env)
            cwd = opts.workdir or cfg.get("WorkingDir") or "/"
            timings["prepare"] = time.monotonic() - t_start

            say(f"tracing {src} ({probe.describe()})")
            t = time.monotonic()
            fat = traced_run(meta, probe, runtime=runtime, cwd=cwd)
            timings["trace"] = time.monotonic() - t
            if not fat.probe.ok:
                tail = fat.output.strip().splitlines()[-1:] if fat.output.strip() else []
                raise PolicyViolation(f"the probe never succeeded on the fat image {src}: {fat.probe.detail}"
                                      + (f" (container said: {tail[0][:300]})" if tail else ""),
                                      hint="fix the probe or the run options (--network, --tmpfs, --user, -e) "
                                           "until the fat image passes it; nothing was slimmed")

            t = time.monotonic()
            plan = _plan(rootfs, cfg, opts, argv, run_env, cwd, fat.trace, include)
            excluded = plan.exclude(list(exclude))
            report = SlimReport(source=src, source_digest=img.digest, output=dst, probe=probe.describe(),
                                runtime=fat.runtime, excluded=excluded,
                                fat_probe={"ok": True, "detail": fat.probe.detail,
                                           "seconds": round(fat.probe.seconds, 3)},
                                static_missing=dict(plan.closure.missing))
            files, size = _fat_size(rootfs)
            report.before = {"files": files, "bytes": size,
                             "compressed_bytes": sum(d.size for d in img.layers) + len(img.config.raw)
                             + img.descriptor.size}
            timings["plan"] = time.monotonic() - t

            from .assemble import assemble, write_image
            # the slim image starts at least as fast as the traced fat one: do not wait the full timeout
            quick = Probe(url=probe.url, cmd=probe.cmd, timeout=min(probe.timeout, max(5.0, 3 * fat.probe.seconds + 2)))
            slim_img = None
            for round_ in range(max_fixes + 1):
                t = time.monotonic()
                say(f"assembling {len(plan.kept)} paths")
                slim_img = assemble(rootfs, plan.kept, img.config, src, img.digest, work / f"a{round_}")
                candidate = f"oci:{work / 'layout'}:slim{round_}"
                write_image(slim_img, candidate)
                timings["assemble"] = timings.get("assemble", 0.0) + time.monotonic() - t
                t = time.monotonic()
                say(f"verifying the slim image ({probe.describe()})")
                attempt = _verify(candidate, opts, quick, runtime, cwd, rootfs, plan)
                timings["verify"] = timings.get("verify", 0.0) + time.monotonic() - t
                report.attempts.append(attempt)
                if attempt.ok or not auto_fix:
                    break
                added = [p for p in attempt.missing if plan.add(p, "auto-fix", "ENOENT in the slim run", elf=True)]
                attempt.added = added
                overridden = [p for p in added if p in excluded]
                if overridden:
                    report.warnings.append(f"--auto-fix put back paths --exclude removed: {', '.join(overridden[:10])}")
                if not added:
                    report.warnings.append("--auto-fix found nothing new to add; giving up")
                    break
            assert slim_img is not None
            report.kept = _kept(rootfs, plan)
            report.after = {"files": slim_img.files, "bytes": slim_img.file_bytes,
                            "compressed_bytes": slim_img.compressed_bytes}
            report.output_digest = slim_img.digest
            if report.ok:
                t = time.monotonic()
                write_image(slim_img, dst, options)
                report.written = True
                timings["write"] = time.monotonic() - t
            if audit:
                t = time.monotonic()
                report.audit = _audit_delta(img, f"oci:{work / 'layout'}:slim{len(report.attempts) - 1}")
                timings["audit"] = time.monotonic() - t
            for lib, who in plan.closure.missing.items():
                report.warnings.append(f"static analysis: {lib} not found in the image ({who})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timings["total"] = time.monotonic() - t_start
    report.timings = timings
    return report


def _plan(rootfs: Path, cfg: dict, opts: Any, argv: list[str], env: list[str], cwd: str, trace: Any,
          include: Sequence[str]):
    from .plan import Plan
    from .rules import config_paths, rule_paths, tmpfs_targets
    tmpfs = tmpfs_targets(opts.tmpfs)
    plan = Plan(rootfs, env, skip=tmpfs)
    plan.add_trace(trace)
    exe = plan.closure.which(argv[0]) if "/" not in argv[0] else argv[0]
    if exe:
        if not exe.startswith("/"):
            exe = cwd.rstrip("/") + "/" + exe
        plan.add(exe, "config", "the entrypoint", elf=True)
    for path, why in config_paths(rootfs, cfg, argv, env, cwd):
        plan.add(path, "config", why)
    for path, why in rule_paths(rootfs, env=env, kept=list(plan.kept), user_set=bool(opts.user or cfg.get("User")),
                                tmpfs=opts.tmpfs, has_dynamic_elf=plan.has_dynamic_elf()):
        plan.add(path, "rule", why)
    for p in tmpfs:   # mount points: the directory itself, never what the image had below it
        if p not in plan.kept:
            plan.add(p, "rule", "rule: mount point")
    plan.add_include(list(include))
    return plan


def _verify(location: str, opts: Any, probe: Any, runtime: str | None, cwd: str, fat_root: Path, plan: Any) -> Attempt:
    """Run *location* the way ``kilobox run`` does, probe it; on failure, trace it to name what is missing."""
    from .probe import ProbeResult
    result, output = _run_and_probe(location, opts, probe, runtime)
    if result.ok:
        return Attempt(True, result.detail, result.seconds, output=output)
    missing: list[str] = []
    try:
        from ..run.bundle import prepare
        from .trace import traced_run
        meta = prepare(location, opts)
        traced = traced_run(meta, probe, runtime=runtime, cwd=cwd)
        missing = _missing(traced.trace.missing, fat_root, plan)
        output = output or traced.output
    except RunError as e:
        result = ProbeResult(False, f"{result.detail}; {e.message}", result.seconds)
    return Attempt(False, result.detail, result.seconds, missing=missing, output=output)


def _missing(paths: set[str], fat_root: Path, plan: Any) -> list[str]:
    """ENOENT paths of a slim run that exist in the fat image and are not kept."""
    from . import rootpath
    from .rules import RUNTIME_DIRS, under
    out = []
    for p in sorted(paths):
        if under(p, RUNTIME_DIRS) or under(p, plan.skip):
            continue
        resolved = rootpath.resolve(fat_root, p)[0]
        if resolved is not None and resolved not in plan.kept:
            out.append(p)
    return out


def _run_and_probe(location: str, opts: Any, probe: Any, runtime: str | None):
    """(ProbeResult, container output) of a detached ``kilobox run`` of *location*."""
    from ..run import remove, run, stop
    from ..run import state as st
    from .probe import ProbeResult
    name = "kb-slim-verify-" + os.urandom(4).hex()
    t0 = time.monotonic()
    try:
        run(location, options=opts, name=name, detach=True, runtime=runtime)
    except RunError as e:
        return ProbeResult(False, f"the slim image did not start: {e.message}", time.monotonic() - t0), ""
    output = ""
    try:
        def alive() -> bool:
            try:
                return st.status(st.load(name))[0] == "running"
            except Exception:  # noqa: BLE001 - gone is not alive
                return False
        if probe.url or probe.cmd:
            result = probe.run(alive=alive)
        else:
            while alive() and time.monotonic() - t0 < probe.timeout:
                time.sleep(0.02)
            code = st.status(st.load(name))[1]
            result = ProbeResult(code == 0, f"exit status {code}", time.monotonic() - t0)
        try:
            output = (Path(st.load(name)["_dir"]) / "log").read_bytes()[-4000:].decode(errors="replace")
        except (OSError, KeyError, RunError):
            pass
    finally:
        try:
            _kill_if_deaf(name)
            stop(name, timeout=3)
        finally:
            remove(name, force=True)
    return result, output


def _kill_if_deaf(name: str) -> None:
    """SIGKILL a container whose init has no SIGTERM handler (as pid 1 it would ignore SIGTERM)."""
    import signal

    from ..run import state as st
    from .trace import catches
    try:
        init = st.init_pid(st.load(name))
    except RunError:
        return
    if init and not catches(init, signal.SIGTERM):
        try:
            os.kill(init, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _kept(root: Path, plan: Any) -> list[KeptPath]:
    from . import rootpath
    out = []
    for path, keep in sorted(plan.kept.items()):
        try:
            st = os.lstat(rootpath.host_path(root, path))
        except OSError:
            continue
        import stat as stat_
        kind = "dir" if stat_.S_ISDIR(st.st_mode) else "symlink" if stat_.S_ISLNK(st.st_mode) else "file"
        out.append(KeptPath(path, kind, st.st_size if kind == "file" else 0, keep.category, keep.reason))
    return out


def _fat_size(rootfs: Path) -> tuple[int, int]:
    from .plan import tree_size
    return tree_size(rootfs)


def _audit_delta(fat_img: Any, slim_loc: str) -> dict[str, Any]:
    from ..audit import audit
    keys = ("grade", "score", "executables", "shells", "setuid", "packages", "files", "total_bytes", "findings")
    out = {}
    for label, image in (("before", fat_img), ("after", slim_loc)):
        s = audit(image).summary
        out[label] = {k: s.get(k) for k in keys}
    return out


__all__ = ["slim", "SlimReport", "render_text"]
