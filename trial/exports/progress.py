"""How far a running export is, written to its job row while the file is being written.

The writers report every record; `ProgressReporter` turns that into at most one UPDATE per
`interval` seconds (and one for the first record), so a large export shows its progress on the
exports page without paying a database round trip per row.

The export reads inside one read-only transaction (`services.export_snapshot`): an UPDATE made on
that connection would be refused, and the page would not see it before the export ends anyway.
So while the export holds its snapshot, progress is written on a connection of its own, in
autocommit: the page's status requests see each update at once."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import DEFAULT_DB_ALIAS, connections

from trial.exports.models import ExportJob

# A person watching the page sees the bar move about once a second; the export pays one small
# UPDATE per second, nothing per row.
PROGRESS_INTERVAL_S = 1.0


class ProgressReporter:
    """`own_connection`: write on a connection opened for the purpose (closed by `close()` or at
    the end of a `with` block) rather than on the export's."""

    def __init__(
        self,
        job_id: int,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        own_connection: bool = False,
    ):
        self.job_id = job_id
        self.interval = PROGRESS_INTERVAL_S if interval is None else interval
        self.clock = clock
        self.own_connection = own_connection
        self.updates = 0
        self._last: float | None = None
        self._connection = None

    def __call__(self, done: int) -> None:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        self.updates += 1
        if not self.own_connection:
            # On the export's connection: inside a caller's transaction (whose job row no other
            # connection may see yet), or outside any, where the page sees it at once.
            ExportJob.objects.filter(pk=self.job_id).update(progress=done)
            return
        if self._connection is None:
            self._connection = connections.create_connection(DEFAULT_DB_ALIAS)
        # Raw SQL: a queryset runs on a registered alias, and this connection is nobody's alias.
        # A progress-only change makes no audit event (ExportJob's history leaves it out).
        quote = self._connection.ops.quote_name
        meta = ExportJob._meta
        with self._connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {quote(meta.db_table)} SET {quote(meta.get_field('progress').column)} = %s"  # noqa: S608 - names from the model's metadata
                f" WHERE {quote(meta.pk.column)} = %s",
                [done, self.job_id],
            )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
