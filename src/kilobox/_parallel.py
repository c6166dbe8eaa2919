"""A few worker threads for blob transfers, on ``_thread`` alone.

:mod:`concurrent.futures` imports :mod:`logging` and :mod:`threading` (several
ms of every CLI run that transfers two blobs); this is the small part of it
kilobox needs: :class:`Workers` runs callables on at most *n* threads,
:meth:`Job.result` waits for one and re-raises its exception,
:meth:`Job.cancel` drops one that has not started, and :func:`run_all` runs a
list of calls and raises the first failure once every started call has ended.
Workers start on demand and end when the queue is empty.
"""

from __future__ import annotations

import _thread

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable

_STATE = _thread.allocate_lock()            # guards every Job's pending -> running/cancelled step


class Job:
    """One call submitted to :class:`Workers`."""

    __slots__ = ("fn", "args", "_done", "_value", "_error", "_state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args
        self._done = _thread.allocate_lock()
        self._done.acquire()                # released when the job has run (or was cancelled)
        self._value: Any = None
        self._error: BaseException | None = None
        self._state = "pending"             # pending -> running -> done, or pending -> cancelled

    def cancel(self) -> bool:
        """Drop the job if it has not started; True when it will never run."""
        with _STATE:
            if self._state != "pending":
                return self._state == "cancelled"
            self._state = "cancelled"
        self._done.release()
        return True

    def result(self) -> Any:
        """Wait for the job; its return value, or its exception raised here."""
        with self._done:
            pass
        if self._state == "cancelled":
            raise RuntimeError("the job was cancelled")
        if self._error is not None:
            raise self._error
        return self._value

    def _run(self) -> None:
        with _STATE:
            if self._state != "pending":    # cancelled meanwhile
                return
            self._state = "running"
        try:
            self._value = self.fn(*self.args)
        except BaseException as e:  # noqa: BLE001 - handed to whoever waits for the job
            self._error = e
        finally:
            self._state = "done"
            self._done.release()


class Workers:
    """At most *n* threads running submitted jobs in order."""

    def __init__(self, n: int) -> None:
        self._max = max(1, n)
        self._queue: list[Job] = []
        self._jobs: list[Job] = []
        self._lock = _thread.allocate_lock()
        self._threads = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Job:
        job = Job(fn, args)
        with self._lock:
            self._queue.append(job)
            self._jobs.append(job)
            start = self._threads < self._max
            if start:
                self._threads += 1
        if start:
            _thread.start_new_thread(self._work, ())
        return job

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._threads -= 1
                    return
                job = self._queue.pop(0)
            job._run()

    def cancel_pending(self) -> None:
        """Cancel every job that has not started."""
        with self._lock:
            jobs, self._queue = self._queue, []
        for j in jobs:
            j.cancel()

    def shutdown(self, cancel: bool = True) -> None:
        """Wait until every job has ended (after cancelling those not started, with *cancel*)."""
        if cancel:
            self.cancel_pending()
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for j in jobs:
            with j._done:               # released when the job has run or was cancelled
                pass


def run_all(calls: list[Callable[[], Any]], n: int) -> list[Any]:
    """Run *calls* on up to *n* threads (the caller runs one of them itself when n is 1 or
    there is a single call); results in order. On a failure, calls not yet started are
    dropped and the first exception is raised once the running ones have ended."""
    if n <= 1 or len(calls) <= 1:
        return [c() for c in calls]
    pool = Workers(min(n, len(calls)))
    jobs = [pool.submit(c) for c in calls]
    first: BaseException | None = None
    results: list[Any] = []
    for j in jobs:
        try:
            results.append(j.result())
        except BaseException as e:  # noqa: BLE001 - re-raised below
            if first is None:
                first = e
                pool.cancel_pending()
            results.append(None)
    if first is not None:
        raise first
    return results


__all__ = ["Job", "Workers", "run_all"]
