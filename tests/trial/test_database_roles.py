"""The runtime database role can do the site's work but cannot alter or silence the audit trail."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.utils import DatabaseError
from psycopg2 import sql

from participants.models import Screening, Visit
from tests.conftest import RUNTIME_ROLE
from trial.audit import event_model_for
from trial.database_roles import APPEND, WRITE, runtime_role_grant
from trial.models import Site

ROLE = RUNTIME_ROLE  # the role the whole suite runs as


@pytest.fixture
def runtime_role(db):
    """Granted as the owner (the suite otherwise runs as the runtime role: tests/conftest.py)."""
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
    return runtime_role_grant(role=ROLE)


def audit_trigger_of(table: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal ORDER BY tgname",
            [table],
        )
        names = [row[0] for row in cursor.fetchall()]
    assert names, f"{table} should carry audit triggers"
    return names[0]


def as_runtime(statement: str, params=None) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(ROLE)))
        cursor.execute(statement, params)


def test_event_tables_are_insert_only_and_the_rest_read_write(runtime_role):
    site_events = event_model_for(Site)._meta.db_table
    assert runtime_role.tables[site_events] == APPEND
    assert runtime_role.tables[Site._meta.db_table] == WRITE
    assert runtime_role.tables["django_migrations"] == ("SELECT",)
    assert all(privileges in (WRITE, APPEND, ("SELECT",)) for privileges in runtime_role.tables.values())


def test_the_runtime_role_writes_clinical_rows_and_their_audit_events(runtime_role, site_a):
    events = event_model_for(Site)
    before = events.objects.count()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(ROLE)))
        Site.objects.filter(pk=site_a.pk).update(name="Renamed by the runtime role")
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == ROLE
    assert events.objects.count() == before + 1


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {events} SET pgh_label = 'forged'",
        "DELETE FROM {events}",
        "TRUNCATE {events}",
        "ALTER TABLE {table} DISABLE TRIGGER ALL",
        "DROP TRIGGER {trigger} ON {table}",
        "ALTER TABLE {events} DROP COLUMN pgh_label",
        "CREATE TABLE public.edc_shadow (id int)",
        "SET session_replication_role = replica",
        "TRUNCATE {table}",
        "DELETE FROM django_migrations",
    ],
)
def test_the_runtime_role_cannot_alter_or_silence_the_audit_trail(runtime_role, statement):
    names = {
        "events": connection.ops.quote_name(event_model_for(Visit)._meta.db_table),
        "table": connection.ops.quote_name(Visit._meta.db_table),
        "trigger": connection.ops.quote_name(audit_trigger_of(Visit._meta.db_table)),
    }
    with pytest.raises(DatabaseError, match="permission denied|must be owner|must be superuser"):
        as_runtime(statement.format(**names))


def test_granting_again_is_idempotent_and_refuses_a_privileged_role(runtime_role):
    again = runtime_role_grant(role=ROLE)
    assert again.created is False and again.tables == runtime_role.tables
    with pytest.raises(CommandError, match="superuser"):
        call_command("db_runtime_role", "--role", "postgres")


def test_the_screening_table_is_writable_for_the_runtime_role(runtime_role):
    assert runtime_role.tables[Screening._meta.db_table] == WRITE
