"""Restart policies for detached containers, as docker spells them (pure functions; the
monitor in :mod:`.lifecycle` applies them)."""

from __future__ import annotations

import os

from ..errors import UsageError

#: docker's restart policies; ``unless-stopped`` behaves as ``always`` (kilobox has no daemon to restart)
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
#: seconds: first back-off, its cap, and how long a run must last for the back-off to start over
BACKOFF_START, BACKOFF_MAX, BACKOFF_RESET = 0.1, 60.0, 10.0
#: test hook: the first back-off in milliseconds (instead of 100)
BACKOFF_ENV = "KILOBOX_RESTART_BACKOFF_MS"


def parse_restart(value: str) -> tuple[str, int]:
    """``no`` | ``on-failure[:MAX]`` | ``always`` | ``unless-stopped`` -> (policy, MAX; 0: no limit)."""
    policy, sep, count = value.partition(":")
    hint = "use no, on-failure[:MAX], always or unless-stopped"
    if policy not in RESTART_POLICIES:
        raise UsageError(f"--restart {value!r}: unknown policy", hint=hint)
    if not sep:
        return policy, 0
    if policy != "on-failure":
        raise UsageError(f"--restart {value!r}: a maximum count only goes with on-failure", hint=hint)
    if not (count.isascii() and count.isdigit()) or len(count) > 9:
        raise UsageError(f"--restart {value!r}: MAX must be a whole number", hint="e.g. --restart on-failure:5")
    return policy, int(count)


def restart_text(policy: tuple[str, int]) -> str:
    """The policy as docker spells it (``on-failure:3``)."""
    return f"{policy[0]}:{policy[1]}" if policy[0] == "on-failure" and policy[1] else policy[0]


def check_restart(restart: str | None, *, detach: bool, remove: bool, publish: object = (),
                  engine: str | None = None) -> tuple[str, int]:
    """Parse *restart* and refuse the combinations kilobox does not support (*publish* goes with any
    policy: the monitor keeps the host ports bound across restarts)."""
    policy = parse_restart(restart) if restart is not None else ("no", 0)
    if policy[0] == "no":
        return policy
    if not detach:
        raise UsageError("--restart needs -d (--detach)",
                         hint="for a foreground container, let its supervisor (e.g. systemd) restart kilobox")
    if remove:
        raise UsageError("--restart and --rm cannot be combined", hint="drop one of them")
    if engine:
        raise UsageError("--restart is not passed on to --engine", hint="drop --restart or --engine")
    return policy


def should_restart(policy: tuple[str, int], code: int, restarts: int) -> bool:
    """Does *policy* restart a container that exited with *code* after *restarts* restarts?"""
    name, most = policy
    if name in ("always", "unless-stopped"):
        return True
    if name == "on-failure":
        return code != 0 and (most == 0 or restarts < most)
    return False


def next_backoff(previous: float, ran: float, start: float = BACKOFF_START) -> float:
    """The wait before the next restart: *start* first and after a run of at least 10 s,
    else twice the *previous* wait, at most a minute."""
    if previous <= 0 or ran >= BACKOFF_RESET:
        return start
    return min(previous * 2, max(BACKOFF_MAX, start))


def initial_backoff() -> float:
    """The first wait: BACKOFF_START, or $KILOBOX_RESTART_BACKOFF_MS (a test hook)."""
    ms = os.environ.get(BACKOFF_ENV, "")
    return int(ms) / 1000 if ms.isascii() and ms.isdigit() and len(ms) < 9 else BACKOFF_START


__all__ = ["RESTART_POLICIES", "BACKOFF_START", "BACKOFF_MAX", "BACKOFF_RESET", "BACKOFF_ENV", "parse_restart",
           "restart_text", "check_restart", "should_restart", "next_backoff", "initial_backoff"]
