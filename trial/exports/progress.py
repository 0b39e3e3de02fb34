"""How far a running export is, written to its job row while the file is being written.

The writers report every record; `ProgressReporter` turns that into at most one UPDATE per
`interval` seconds (and one for the first record), so a large export shows its progress on the
exports page without paying a database round trip per row."""

from __future__ import annotations

import time
from collections.abc import Callable

from trial.exports.models import ExportJob

# A person watching the page sees the bar move about once a second; the export pays one small
# UPDATE per second, nothing per row.
PROGRESS_INTERVAL_S = 1.0


class ProgressReporter:
    def __init__(
        self,
        job_id: int,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.job_id = job_id
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.clock = clock
        self.updates = 0
        self._last: float | None = None

    def __call__(self, done: int) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        self.updates += 1
        # Outside any transaction: the page's status requests see it at once.
        ExportJob.objects.filter(pk=self.job_id).update(progress=done)
