"""Progress of long work outside the training loop: one log line, at most once a second.

    progress = Progress("classifying real images", total=5000, unit="images")
    for batch in batches:
        ...
        progress.update(len(batch))
    progress.close()

logs lines like `classifying real images: 1200/5000 images (24%), 96.3 images/s, ETA 0:00:39`.
The first line comes one interval after the start and the next ones at least one
interval apart, so work that ends within a second logs nothing (the trainer's
standing statistics before each sample sheet stay quiet). `close` logs the final count
once if any line was logged (`...: 5000/5000 images in 0:00:52 (96.1 images/s)`).
`track` wraps an iterable of known length.
"""

import time

from absl import logging

INTERVAL_SECONDS = 1.0


def format_duration(seconds):
    """`H:MM:SS` of a number of seconds, rounded to the nearest (negative: 0)."""
    seconds = int(round(max(seconds, 0)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """A rate-limited progress line of `done`/`total` units, with rate and ETA.

    Args:
      what: what is being done, the line's prefix ("standing statistics").
      total: units to do (> 0).
      unit: the unit's name in the line ("images", "batches").
      interval: minimum seconds between lines (and before the first).
      clock: seconds as a float, monotonic (tests pass a fake).
      log: called with one formatted line (default: `absl.logging.info`).
    """

    def __init__(self, what, total, unit="items", interval=INTERVAL_SECONDS, clock=None, log=None):
        self.what, self.total, self.unit, self.interval = what, total, unit, interval
        self.clock = clock or time.monotonic
        self.log = log or (lambda line: logging.info("%s", line))
        self.done = 0
        self.start = self.clock()
        self.last_line = self.start  # the first line waits one interval too
        self.lines = 0

    def rate(self, now):
        """Units per second since the start (0 before any time passed)."""
        elapsed = now - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self, now):
        """The progress line at time `now`."""
        rate = self.rate(now)
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        percent = 100 * self.done // self.total if self.total else 100
        return (
            f"{self.what}: {self.done}/{self.total} {self.unit} ({percent}%), "
            f"{rate:.1f} {self.unit}/s, ETA {eta}"
        )

    def update(self, count=1):
        """Counts `count` more units done; logs a line if the interval has passed."""
        self.done += count
        now = self.clock()
        if now - self.last_line >= self.interval:
            self._emit(now)

    def close(self):
        """Logs the final count if an earlier line was logged (else the work was quick)."""
        if self.lines:
            now = self.clock()
            self.log(
                f"{self.what}: {self.done}/{self.total} {self.unit} in "
                f"{format_duration(now - self.start)} ({self.rate(now):.1f} {self.unit}/s)"
            )

    def _emit(self, now):
        self.log(self.line(now))
        self.last_line = now
        self.lines += 1


def track(iterable, what, total=None, unit="items", **kwargs):
    """Yields the items of `iterable`, counting one unit each in a `Progress` line.

    Args:
      iterable: the work; `total` defaults to its `len`.
      what, unit, **kwargs: as `Progress`.
    """
    progress = Progress(what, len(iterable) if total is None else total, unit, **kwargs)
    for item in iterable:
        yield item
        progress.update()
    progress.close()
