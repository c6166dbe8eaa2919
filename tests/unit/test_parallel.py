"""The small worker pool (kilobox/_parallel.py) used for registry prefetches."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from kilobox._parallel import Workers, run_all


def test_run_all_keeps_order_and_runs_in_parallel() -> None:
    barrier = threading.Barrier(3, timeout=5)          # only passes when 3 calls run at once

    def call(i: int) -> int:
        barrier.wait()
        return i
    assert run_all([lambda i=i: call(i) for i in range(3)], 3) == [0, 1, 2]
    assert run_all([lambda: 1, lambda: 2], 1) == [1, 2]


def test_first_error_is_raised_after_the_others_end() -> None:
    ended: list[str] = []

    def slow() -> None:
        time.sleep(0.05)
        ended.append("slow")

    def boom() -> None:
        raise ValueError("boom")
    with pytest.raises(ValueError, match="boom"):
        run_all([boom, slow, lambda: ended.append("late")], 2)
    assert "slow" in ended                              # the running call finished first


def test_cancel_and_shutdown() -> None:
    w = Workers(1)
    gate = threading.Event()
    first = w.submit(gate.wait, 5)
    second = w.submit(lambda: "never")
    assert second.cancel() and second.cancel()
    gate.set()
    assert first.result() is True and not first.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        second.result()
    third = w.submit(time.sleep, 0.02)
    w.shutdown(cancel=False)                            # waits for it
    assert third._state == "done" and third.result() is None
    blocker = threading.Event()
    w.submit(blocker.wait, 5)
    queued = w.submit(lambda: "never")
    threading.Timer(0.05, blocker.set).start()
    w.shutdown()                                        # cancels what has not started, waits for the rest
    with pytest.raises(RuntimeError):
        queued.result()


def test_no_heavy_imports() -> None:
    import subprocess
    code = "import sys, kilobox._parallel; print(' '.join(sys.modules))"
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not {"threading", "concurrent.futures", "logging"} & set(mods)
