"""The driver's progress line: input rows done of the run's total, the rate, and the time left.

    progress: 1,536/4,000,000 rows (0%), 412.3 rows/s, ETA 2h41m

The total is known once the run is planned (the rows of unfinished shards less those done before); rows
count as done when their part file is written (`ShardProgress` counts the same events to start a shard's
commit). Ray Data's own progress ("Total Progress: 0/?") knows neither: its total is blocks, unknown
until the read ends. In a job log (no terminal) the line is printed every `interval` seconds; in a
terminal it is one bar rewritten in place.
"""

from __future__ import annotations

import sys
import threading
import time
from fractions import Fraction


def duration(seconds: float) -> str:
    """42s, 12m05s, 3h07m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(done: float, total: int, seconds: float, unit: str = "rows") -> str:
    """`progress: done/total unit (P%), R unit/s, ETA T` (no ETA before the first rows are done)."""
    done = min(int(done), total) if total else int(done)
    percent = 100 * done // total if total else 100
    rate = done / seconds if seconds > 0 else 0.0
    if done >= total:
        eta = f"done in {duration(seconds)}"
    elif rate > 0:
        eta = f"ETA {duration((total - done) / rate)}"
    else:
        eta = "ETA unknown (no rows done yet)"
    return f"progress: {done:,}/{total:,} {unit} ({percent}%), {rate:,.1f} {unit}/s, {eta}"


def progress_bar(done: float, total: int, seconds: float, unit: str = "rows", width: int = 30) -> str:
    """The line with a bar in front, for a terminal."""
    filled = width * min(int(done), total) // total if total else width
    return f"[{'#' * filled}{'.' * (width - filled)}] " + progress_line(done, total, seconds, unit)[len("progress: "):]


class Progress:
    """Rows done of `total`, counted by the driver's loop (`add`) and reported by a thread (`start`, `stop`)."""

    def __init__(self, total: int, interval: float, unit: str = "rows", stream=None, clock=time.monotonic):
        self.total, self.interval, self.unit = total, interval, unit
        self.stream = stream if stream is not None else sys.stdout
        self.clock = clock
        self.done = Fraction(0)  # a document's segments each finish their share of it (documents/units.py)
        self.started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, rows) -> None:
        self.done += Fraction(rows)

    def line(self) -> str:
        return progress_line(self.done, self.total, self.clock() - self.started, self.unit)

    def _tty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def report(self, final: bool = False) -> None:
        if self._tty():
            text = progress_bar(self.done, self.total, self.clock() - self.started, self.unit)
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def start(self) -> Progress:
        """Report now, then every `interval` seconds (interval <= 0: only now and at `stop`)."""
        self.report()
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def stop(self) -> None:
        """Stop the thread and report the last count."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.report(final=True)
