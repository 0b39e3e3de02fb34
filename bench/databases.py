"""The benchmark's own databases, sts_edc_bench_<N>: created, migrated and seeded once, then reused.

A database remembers what it was seeded with in its PostgreSQL comment; it is reused when the
size and seed match, and migrated on every run (a no-op unless a migration landed since). Set-up
runs as the owner, as `make migrate` does; the runtime role is granted its privileges after each
migration, and everything measured connects as it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg2
from psycopg2 import sql

from bench.environment import OWNER, PROJECT_DIR, RUNTIME_ROLE, STATIC_ROOT, bench_environment, database_url

MANAGE = [sys.executable, str(PROJECT_DIR / "manage.py")]
PENDING_REMINDERS = 100_000  # for the reminder tick (issue #9)


def database_name(size: int) -> str:
    return f"sts_edc_bench_{size}"


def _admin_connection():
    connection = psycopg2.connect(database_url("postgres", role=OWNER))
    connection.autocommit = True
    return connection


def _marker(size: int, seed: int) -> str:
    return f"bench seed_demo participants={size} seed={seed}"


def _comment(name: str) -> str | None:
    """The database's comment; None if there is no such database."""
    with _admin_connection() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
        )
        row = cursor.fetchone()
    return None if row is None else (row[0] or "")


def _execute(statement: sql.Composable) -> None:
    connection = _admin_connection()
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _manage(name: str, *args: str, log: Path) -> None:
    with open(log, "ab") as out:
        subprocess.run(  # noqa: S603 - fixed argv: our interpreter and manage.py, no shell
            [*MANAGE, *args],
            cwd=PROJECT_DIR,
            env=bench_environment(name, DATABASE_URL=database_url(name, role=OWNER)),
            stdout=out,
            stderr=out,
            check=True,
        )


def seed_options(size: int, seed: int) -> list[str]:
    """seed_demo's options for a synthetic data set, when this checkout's seed_demo has them
    (issue #9 item 1); otherwise none, and the database holds the small demo data."""
    help_text = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [*MANAGE, "seed_demo", "--help"],
        cwd=PROJECT_DIR,
        env=bench_environment("postgres", DATABASE_URL=database_url("postgres", role=OWNER)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "--participants" not in help_text:
        return []
    options = ["--participants", str(size), "--seed", str(seed)]
    if "--pending-reminders" in help_text:
        options += ["--pending-reminders", str(PENDING_REMINDERS)]
    return options


def prepared_database(size: int, seed: int, *, log: Path) -> str:
    """The name of a migrated database holding `size` seeded participants (created if needed)."""
    name = database_name(size)
    options = seed_options(size, seed)
    marker = _marker(size, seed) if options else "bench seed_demo small demo data"
    comment = _comment(name)
    if comment is not None and comment != marker:
        _execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        comment = None
    if comment is None:
        _execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    _manage(name, "migrate", "--no-input", log=log)
    _manage(name, "db_runtime_role", "--role", RUNTIME_ROLE, log=log)
    if comment != marker:
        _manage(name, "seed_demo", *options, log=log)
        # Fresh planner statistics after the bulk load (a seed_demo that predates its own ANALYZE
        # left the dashboard's plans over a minute long; bench/results/profiling.md), and the
        # tables vacuumed as autovacuum would have done by the time a study is that large: the
        # first full read of an unvacuumed bulk load writes every page's hint bits (a first CSV
        # export at 10,000 paid for that) and no index-only scan can skip the heap.
        _manage(name, "dbshell", "--", "-c", "VACUUM (ANALYZE)", log=log)
        _execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(marker)))
    return name


# Where the project's static files come from (settings.STATICFILES_DIRS; apps' files change only
# with a dependency upgrade, which touches package-lock.json or requirements.txt).
STATIC_SOURCES = ("static", "node_modules/bootstrap/dist", "node_modules/bootstrap-icons/font")
STATIC_INPUTS = ("package-lock.json", "requirements.txt")


def _newest_source() -> float:
    times = [(PROJECT_DIR / name).stat().st_mtime for name in STATIC_INPUTS]
    for source in STATIC_SOURCES:
        times += [path.stat().st_mtime for path in (PROJECT_DIR / source).rglob("*") if path.is_file()]
    return max(times)


def collected_static(*, log: Path) -> None:
    """Static files collected as a deployment does (the manifest storage serves hashed names),
    again whenever a source file is newer than the manifest: a page naming a file missing from
    the manifest answers 500. (Collecting takes minutes on a busy machine, so not every run.)"""
    manifest = STATIC_ROOT / "staticfiles.json"
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source():
        _manage("postgres", "collectstatic", "--no-input", log=log)
