"""Issue #10 item 7: `make backup` / `make restore` bring back every row, file and audit event."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg2
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from psycopg2 import sql

from participants import visits
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    baseline,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    participant,
    screen,
    visit_data,
)
from trial.backup import MANIFEST, Database, media_files
from trial.reports.services import visit_report_generate


def table_digests(database: Database) -> dict[str, tuple[int, str]]:
    """Row count and MD5 of all rows (as text, sorted) of every public table."""
    conn = database.connect()
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            tables = [row[0] for row in cursor.fetchall()]
            digests = {}
            for table in tables:
                cursor.execute(
                    sql.SQL(
                        "SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {} t"
                    ).format(sql.Identifier(table))
                )
                digests[table] = cursor.fetchone()
            cursor.execute(
                "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"
            )
            digests["<sequences>"] = tuple(cursor.fetchall())
            cursor.execute(
                "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "WHERE NOT t.tgisinternal ORDER BY 1, 2"
            )
            digests["<triggers>"] = tuple(cursor.fetchall())
    finally:
        conn.close()
    return digests


@pytest.fixture
def restore_target():
    name = f"test_restore_{uuid.uuid4().hex[:10]}"
    yield Database.from_settings(name)
    admin = Database.from_settings().connect("postgres")
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


@pytest.mark.django_db(transaction=True)
def test_a_restore_into_a_fresh_database_finds_every_row_file_and_audit_event(
    visit_data,  # noqa: F811
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    tmp_path,
    restore_target,
):
    visits.visit_complete(actor=coordinator, visit=visit_data, visit_date=TODAY)
    report = visit_report_generate(visit_id=visit_data.pk, actor=investigator)
    assert report is not None and Path(report.pdf.path).is_file()
    source = Database.from_settings()
    before = table_digests(source)
    files_before = media_files(Path(settings.MEDIA_ROOT))
    assert (
        before["participants_participantevent"][0] > 0 if "participants_participantevent" in before else True
    )
    audit_tables = [t for t in before if t.endswith("event") and before[t][0] > 0]
    assert len(audit_tables) >= 5, "the fixture should have written audit events in several tables"
    assert report.pdf.name in files_before

    call_command("backup", "--to", str(tmp_path / "backups"))
    [folder] = (tmp_path / "backups").iterdir()
    assert (folder / MANIFEST).is_file()

    media = tmp_path / "restored-media"
    call_command("restore", str(folder), "--database", restore_target.name, "--media-root", str(media))

    assert table_digests(restore_target) == before
    assert media_files(media) == files_before
    # The restored audit trail is still append-only: its guard triggers came back with it.
    conn = restore_target.connect()
    try:
        with conn.cursor() as cursor, pytest.raises(psycopg2.Error):
            cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(audit_tables[0])))
    finally:
        conn.close()


@pytest.mark.django_db(transaction=True)
def test_a_damaged_backup_is_refused_before_anything_is_created(tmp_path, restore_target, site_a):
    call_command("backup", "--to", str(tmp_path))
    [folder] = tmp_path.iterdir()
    dump = folder / "database.dump"
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))

    with pytest.raises(CommandError, match="damaged: database.dump"):
        call_command(
            "restore", str(folder), "--database", restore_target.name, "--media-root", str(tmp_path / "m")
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [restore_target.name])
        assert cursor.fetchone() is None
    assert not (tmp_path / "m").exists()


@pytest.mark.django_db(transaction=True)
def test_restore_never_writes_into_a_database_that_holds_data(tmp_path, site_a):
    call_command("backup", "--to", str(tmp_path))
    [folder] = tmp_path.iterdir()
    current = settings.DATABASES["default"]["NAME"]
    before = table_digests(Database.from_settings())

    with pytest.raises(CommandError, match=f"database {current} already holds tables"):
        call_command("restore", str(folder), "--database", current, "--media-root", str(tmp_path / "m"))
    assert table_digests(Database.from_settings()) == before


def test_restore_names_a_folder_that_is_not_a_backup(tmp_path):
    with pytest.raises(CommandError, match="is not a backup"):
        call_command("restore", str(tmp_path), "--media-root", str(tmp_path / "m"))
