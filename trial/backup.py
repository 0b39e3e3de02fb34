"""Backups of the whole study: the database (audit trail included) and the uploaded files.

A backup is a folder `edc-backup-<UTC time>/` holding
- `database.dump`: `pg_dump --format=custom` of the project's database, a consistent snapshot;
- `media.tar`: every file under MEDIA_ROOT (consent PDFs, de-identified DICOM files and previews,
  visit reports, exports), with relative names;
- `manifest.json`: what was backed up and the SHA-256 of both archives and of every file, plus the
  row count of every table, so a restore can prove it brought back exactly what was saved.

The database is dumped first, then the files: files are written before the rows that name them
commit and are never deleted, so every file the dump refers to is in the archive.

A restore goes only into a database that is new or empty (it never mixes two studies' rows), checks
the archives' hashes before touching anything, restores the dump (triggers, including the audit
guard and the lock triggers, are created after the data, so restoring does not fire them), unpacks
the files, and then checks every file's hash and every table's row count against the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from django.conf import settings
from psycopg2 import sql

MANIFEST = "manifest.json"
DATABASE_DUMP = "database.dump"
MEDIA_ARCHIVE = "media.tar"
FORMAT_VERSION = 1
CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Database:
    """Where to connect: a database name and the server of the project's DATABASES setting."""

    name: str
    host: str = ""
    port: str = ""
    user: str = ""
    password: str = ""

    @classmethod
    def from_settings(cls, name: str | None = None) -> Database:
        config = settings.DATABASES["default"]
        return cls(
            name=name or config["NAME"],
            host=str(config.get("HOST") or ""),
            port=str(config.get("PORT") or ""),
            user=str(config.get("USER") or ""),
            password=str(config.get("PASSWORD") or ""),
        )

    def environment(self) -> dict[str, str]:
        """Variables for pg_dump/pg_restore (a password never appears on a command line)."""
        env = {**os.environ, "PGDATABASE": self.name}
        for variable, value in (
            ("PGHOST", self.host),
            ("PGPORT", self.port),
            ("PGUSER", self.user),
            ("PGPASSWORD", self.password),
        ):
            if value:
                env[variable] = value
        return env

    def connect(self, name: str | None = None):
        connection = psycopg2.connect(
            dbname=name or self.name,
            host=self.host or None,
            port=self.port or None,
            user=self.user or None,
            password=self.password or None,
            connect_timeout=5,
        )
        connection.autocommit = True
        return connection


@dataclass(frozen=True)
class RestoreResult:
    database: str
    media_root: Path
    tables: int
    rows: int
    files: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def media_files(media_root: Path) -> dict[str, str]:
    """SHA-256 of every file under `media_root`, by relative POSIX name."""
    if not media_root.exists():
        return {}
    return {
        path.relative_to(media_root).as_posix(): sha256_file(path)
        for path in sorted(media_root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def table_row_counts(connection) -> dict[str, int]:
    """Row count of every ordinary table in the public schema (event tables included)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
            counts[table] = cursor.fetchone()[0]
    return counts


def _run(command: list[str], database: Database, what: str) -> None:
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell; names are ours
            command, env=database.environment(), capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise BackupError(
            f"{command[0]} is not installed: install the PostgreSQL client (apt-get install postgresql-client)."
        ) from None
    if completed.returncode != 0:
        raise BackupError(f"{what} failed: {completed.stderr.strip() or completed.stdout.strip()}")


def backup_create(
    destination: Path, *, database: Database | None = None, media_root: Path | None = None
) -> Path:
    """Write a backup folder under `destination` and return its path.

    The row counts in the manifest come from the very snapshot pg_dump reads (an exported
    snapshot held open by a repeatable-read transaction), so they match the dump exactly even
    while the site is in use."""
    database = database or Database.from_settings()
    media_root = Path(media_root or settings.MEDIA_ROOT)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = Path(destination) / f"edc-backup-{stamp}"
    partial = folder.with_name(folder.name + ".partial")
    partial.mkdir(parents=True)
    try:
        connection = database.connect()
        try:
            connection.autocommit = False
            connection.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot()")
                snapshot = cursor.fetchone()[0]
            _run(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot}",
                    "--file",
                    str(partial / DATABASE_DUMP),
                ],
                database,
                "pg_dump",
            )
            rows = table_row_counts(connection)
        finally:
            connection.close()
        files = media_files(media_root)
        with tarfile.open(partial / MEDIA_ARCHIVE, "w") as archive:
            for name in files:
                archive.add(media_root / name, arcname=name, recursive=False)
        manifest = {
            "format": FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "database": database.name,
            "archives": {
                DATABASE_DUMP: sha256_file(partial / DATABASE_DUMP),
                MEDIA_ARCHIVE: sha256_file(partial / MEDIA_ARCHIVE),
            },
            "tables": rows,
            "files": files,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        partial.rename(folder)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def manifest_read(folder: Path) -> dict:
    """The backup's manifest, after checking that both archives are the ones it describes."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a backup: it has no {MANIFEST}.") from None
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{folder / MANIFEST} is damaged: it is not valid JSON.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"{folder / MANIFEST} is not a backup manifest this version can restore.")
    for name, expected in manifest["archives"].items():
        path = folder / name
        if not path.is_file():
            raise BackupError(f"The backup is incomplete: {name} is missing.")
        if sha256_file(path) != expected:
            raise BackupError(f"The backup is damaged: {name} does not match its SHA-256 in the manifest.")
    return manifest


def _database_is_empty(database: Database) -> bool:
    admin = database.connect("postgres")
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database.name])
            if cursor.fetchone() is None:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))
                return True
    finally:
        admin.close()
    connection = database.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            return cursor.fetchone()[0] == 0
    finally:
        connection.close()


def backup_restore(folder: Path, *, database: Database, media_root: Path) -> RestoreResult:
    """Restore a backup into a new or empty database and media folder, then prove it complete."""
    folder = Path(folder)
    media_root = Path(media_root)
    manifest = manifest_read(folder)
    if media_root.exists() and any(media_root.iterdir()):
        raise BackupError(
            f"The media folder {media_root} is not empty: restore into a new folder (MEDIA_ROOT) "
            "so no file of the current site is overwritten."
        )
    if not _database_is_empty(database):
        raise BackupError(
            f"The database {database.name} already holds tables: restore into a new database "
            "(RESTORE_DATABASE=<name>) so no row of the current site is overwritten or mixed."
        )
    _run(
        [
            "pg_restore",
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "--dbname",
            database.name,
            str(folder / DATABASE_DUMP),
        ],
        database,
        "pg_restore",
    )
    media_root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / MEDIA_ARCHIVE) as archive:
        archive.extractall(media_root, filter="data")
    restored_files = media_files(media_root)
    if restored_files != manifest["files"]:
        missing = sorted(set(manifest["files"]) - set(restored_files))
        changed = sorted(
            n for n in manifest["files"] if n in restored_files and restored_files[n] != manifest["files"][n]
        )
        raise BackupError(
            f"Restored files differ from the backup: missing {missing[:5]}, changed {changed[:5]}."
        )
    connection = database.connect()
    try:
        rows = table_row_counts(connection)
    finally:
        connection.close()
    if rows != manifest["tables"]:
        differing = sorted(
            t for t in set(rows) | set(manifest["tables"]) if rows.get(t) != manifest["tables"].get(t)
        )
        raise BackupError(f"Restored row counts differ from the backup in: {', '.join(differing[:10])}.")
    return RestoreResult(
        database=database.name,
        media_root=media_root,
        tables=len(rows),
        rows=sum(rows.values()),
        files=len(restored_files),
    )
