"""Whether anything a signature covers changed since signatures were last verified: the
watermark that lets the signature queue skip verification (issue #9: it ran over every valid
signature before each page, ~0.8 s at 4,556 signatures) without ever showing a signature as valid
after its records changed (21 CFR 11.70).

The counters: every audited table writes an event row, with an id from its own sequence, on each
insert, update and delete of its rows (`trial.audit`: triggers, no code path skips them), so the
newest event id of each table a signature covers moves with any change of signed data (as the
dashboard's cache key does, `trial.dashboard.dashboard_cache_key`). One index-only `max(pgh_id)`
per table.

The counters alone miss one case: a transaction still writing when they were read. Its events are
not visible yet, and their ids may be below a newer event that is (ids are drawn in one order,
commits happen in another). Such a transaction already had its transaction id when it drew an
event id: the events are written by AFTER row triggers, after the row write that assigned it. So
it was in progress when the counters were read (in the snapshot's list, or running beyond its
horizon: IN_PROGRESS); the watermark keeps those ids and holds only while none of them has
committed since (`pg_xact_status`). Any later transaction draws ids
above the counters. Transactions of other databases on the server appear in that list too: they
only cost an unneeded check.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import QuerySet

from trial.audit import event_model_for
from trial.signatures.models import Signature
from trial.signatures.subjects import SUBJECTS

# Kept a day; losing it (eviction, a restart of Redis) costs one full verification.
WATERMARK_TIMEOUT_S = 24 * 3600


def _covered_event_tables() -> list[str]:
    """The event tables of every record a signature covers, and of the signatures themselves
    (a void is an update of the signature), quoted; names from the models' own metadata."""
    models = {Signature}
    for subject in SUBJECTS.values():
        models.update(model for model, _lookup, _outer in subject.event_sources)
    return sorted(connection.ops.quote_name(event_model_for(m)._meta.db_table) for m in models)


def _may_have_written(tables: list[str]) -> str:
    """A WHERE clause keeping the transaction ids `x` of a snapshot's list that may have written
    events to `tables`. Dropped: a transaction still running (it holds the lock on its own id)
    that holds no lock on any of them in this database: a writer keeps its table lock to the end.
    Kept: the others, including one that ended between the snapshot and this read (pg_locks is
    read after the snapshot is taken, so nothing that could have written is dropped)."""
    regclasses = ", ".join(f"'{t}'::regclass" for t in tables)
    return (
        "WHERE NOT EXISTS(SELECT FROM pg_locks AS own"  # noqa: S608 - names from the models' metadata
        " WHERE own.locktype = 'transactionid'"
        " AND own.transactionid::text::bigint = mod(x::text::bigint, 4294967296)"  # xid8 -> xid
        " AND NOT EXISTS(SELECT FROM pg_locks AS held WHERE held.pid = own.pid"
        " AND held.locktype = 'relation'"
        " AND held.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND held.relation = ANY(ARRAY[{regclasses}]::oid[])))"
    )


# The transactions in progress (xid8): the snapshot's list, and those running now that started
# after the snapshot's horizon. A snapshot lists only ids below its xmax, which is the newest
# *completed* id plus one, not the next id to be given: a transaction that took its id after the
# last one to finish is in progress but in no list (on a quiet database, every writer is). Those
# are read from their locks (each holds one on its own id; pg_locks gives the 32-bit id, widened
# here against the snapshot's xmax, after which they all come). This process's own is left out.
IN_PROGRESS = (
    "SELECT x FROM pg_snapshot_xip(pg_current_snapshot()) AS x"
    " UNION SELECT (m + mod(t - mod(m, 4294967296) + 4294967296, 4294967296))::text::xid8"
    " FROM (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint) AS snapshot(m),"
    " (SELECT transactionid::text::bigint FROM pg_locks WHERE locktype = 'transactionid'"
    " AND mode = 'ExclusiveLock' AND granted AND pid <> pg_backend_pid()) AS running(t)"
    " WHERE mod(t - mod(m, 4294967296) + 4294967296, 4294967296) < 2147483648"
)


@dataclass(frozen=True)
class Watermark:
    """The state of the covered tables as one statement saw it, with the scope it was read for."""

    database: str  # the database's oid and the server's start time: a restored copy is another
    counters: tuple[int | None, ...]
    scope: tuple[int, ...]  # the sites whose signatures are verified
    in_progress: tuple[str, ...]  # transaction ids (xid8, as text) writing at that moment

    def covers(self, now: Watermark) -> bool:
        """Whether a verification completed after this watermark was read still holds `now`."""
        return (self.database, self.counters, self.scope) == (now.database, now.counters, now.scope)


def _key(name: str) -> str:
    return f"signatures:verified:{connection.settings_dict['NAME']}:{name}"


def watermark_read(*, sites: QuerySet, since: Watermark | None) -> tuple[Watermark, bool]:
    """The watermark now for the signatures of `sites`, and whether a transaction that was in
    progress at `since` has committed (or is too old to tell) since. One query."""
    tables = _covered_event_tables()
    may_have_written = _may_have_written(tables)
    if sites.query.is_empty():
        scope_sql, scope_params = "ARRAY[]::bigint[]", ()
    else:
        sql, scope_params = sites.order_by("pk").values("pk").query.sql_with_params()
        scope_sql = f"ARRAY({sql})"
    # Table names are the models' own, quoted; the scope is compiled by the ORM with parameters.
    counters = ", ".join(f"(SELECT max(pgh_id) FROM {t})" for t in tables)  # noqa: S608
    statement = (
        f"SELECT ARRAY[{counters}]::bigint[], "  # noqa: S608
        "(SELECT oid FROM pg_database WHERE datname = current_database())::text"
        " || '@' || pg_postmaster_start_time()::text, "
        f"{scope_sql}, "
        f"ARRAY(SELECT x::text FROM ({IN_PROGRESS}) AS candidates(x) {may_have_written}), "
        "EXISTS(SELECT FROM unnest(%s::xid8[]) AS x"
        " WHERE coalesce(pg_xact_status(x), 'committed') = 'committed')"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [*scope_params, list(since.in_progress) if since else []])
        counters_now, database, scope, in_progress, committed_since = cursor.fetchone()
    now = Watermark(
        database=database, counters=tuple(counters_now), scope=tuple(scope), in_progress=tuple(in_progress)
    )
    return now, committed_since


def watermark_last(name: str) -> Watermark | None:
    """The watermark read before the last completed verification for `name` (a user's queue)."""
    value = cache.get(_key(name))
    if not isinstance(value, dict):
        return None
    return Watermark(
        database=value["database"],
        counters=tuple(value["counters"]),
        scope=tuple(value["scope"]),
        in_progress=tuple(value["in_progress"]),
    )


def watermark_save_on_commit(name: str, watermark: Watermark) -> None:
    """Remember `watermark` for `name` once the verification's voids are committed: a
    verification rolled back must not be trusted."""
    value = {
        "database": watermark.database,
        "counters": list(watermark.counters),
        "scope": list(watermark.scope),
        "in_progress": list(watermark.in_progress),
    }
    transaction.on_commit(lambda: cache.set(_key(name), value, WATERMARK_TIMEOUT_S))
