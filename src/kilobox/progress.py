"""Progress bars for transfers, on a terminal only (the CLI's edge).

:func:`progress_reporter` yields a callback ``(what, done, total)`` for
:attr:`kilobox.formats.Options.progress`, or ``None`` when stderr is not a
terminal. ``rich`` is imported only once a transfer has lasted more than
:data:`DELAY` seconds, so quick copies and pipes never pay for it.
"""

from __future__ import annotations

import contextlib
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Iterator

#: seconds a transfer must run before bars appear
DELAY = 0.4

Callback = "Callable[[str, int, int], None]"


class _Bars:
    """Lazily started rich progress: one bar per *what*."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        import threading
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __call__(self, what: str, done: int, total: int) -> None:
        with self._lock:
            if self._progress is None:
                if time.monotonic() - self._t0 < DELAY or (total and done >= total and not self._tasks):
                    return
                self._start()
            task = self._tasks.get(what)
            if task is None:
                task = self._tasks[what] = self._progress.add_task(what[:40], total=total or None)
            self._progress.update(task, completed=done, total=total or None)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn,
                                   TransferSpeedColumn)
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                  TransferSpeedColumn(), console=Console(file=self._stream),
                                  transient=True)
        self._progress.start()

    def stop(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()


@contextlib.contextmanager
def progress_reporter(enabled: bool | None = None, stream: Any = None) -> Iterator[Callback | None]:
    """A progress callback while the block runs; ``None`` when not on a terminal (or disabled)."""
    out = stream if stream is not None else sys.stderr
    if enabled is None:
        enabled = bool(getattr(out, "isatty", lambda: False)())
    if not enabled:
        yield None
        return
    bars = _Bars(out)
    try:
        yield bars
    finally:
        bars.stop()


class CountingReader:
    """Wrap a stream; report bytes read to *callback* as (what, done, total)."""

    def __init__(self, raw: Any, callback: Callback, what: str, total: int) -> None:
        self._raw, self._cb, self._what, self._total, self._done = raw, callback, what, total, 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        if chunk:
            self._done += len(chunk)
            self._cb(self._what, self._done, self._total)
        return chunk

    def close(self) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


__all__ = ["progress_reporter", "CountingReader", "DELAY"]
