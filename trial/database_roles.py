"""The least-privilege PostgreSQL role the running site connects as.

Migrations (and backups) run as the database owner. The web, worker and beat processes connect as
a separate runtime role that can read and write clinical rows but cannot change the audit trail
or switch it off:

- audit event tables (and models with `APPEND_ONLY = True`): SELECT and INSERT only (the audit triggers run as the writing role and
  insert the event rows); no UPDATE, DELETE or TRUNCATE, on top of the triggers that refuse them;
- `django_migrations`: SELECT only;
- every other table: SELECT, INSERT, UPDATE, DELETE (never TRUNCATE, REFERENCES or TRIGGER);
- not an owner of anything, so it cannot ALTER or DROP a table, DISABLE a trigger or replace a
  trigger function; not a superuser, so it cannot `SET session_replication_role = replica`
  (which would silence every trigger); no CREATE on the schema.

`manage.py db_runtime_role` applies this, idempotently; `make migrate` and the compose `migrate`
service run it after every migration so new tables get their grants.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps
from django.db import connections, transaction
from psycopg2 import sql

from trial.audit import audited_models

WRITE = ("SELECT", "INSERT", "UPDATE", "DELETE")
APPEND = ("SELECT", "INSERT")
READ = ("SELECT",)
READ_ONLY_TABLES = frozenset({"django_migrations"})


class RoleError(Exception):
    """The runtime role cannot be set up as required; the message says why."""


@dataclass(frozen=True)
class RoleGrants:
    role: str
    created: bool
    tables: dict[str, tuple[str, ...]]

    def count(self, privileges: tuple[str, ...]) -> int:
        return sum(1 for granted in self.tables.values() if granted == privileges)


def append_only_tables() -> frozenset[str]:
    """The audit trail's event tables, and the tables of models that declare themselves
    append-only (`APPEND_ONLY = True`, e.g. the log of refused signing attempts)."""
    declared = {model._meta.db_table for model in apps.get_models() if getattr(model, "APPEND_ONLY", False)}
    return frozenset(event._meta.db_table for event in audited_models().values()) | declared


def privileges_for(table: str, append_only: frozenset[str]) -> tuple[str, ...]:
    if table in READ_ONLY_TABLES:
        return READ
    if table in append_only:
        return APPEND
    return WRITE


def _role_exists(cursor, role: str) -> tuple[bool, bool]:
    cursor.execute(
        "SELECT rolsuper OR rolbypassrls OR rolcreaterole FROM pg_roles WHERE rolname = %s", [role]
    )
    row = cursor.fetchone()
    return (row is not None, bool(row and row[0]))


def _execute(cursor, statement: sql.Composable) -> None:
    # As text: pghistory's cursor wrapper (active in commands and tasks) expects a string.
    cursor.execute(statement.as_string(cursor.cursor))


def runtime_role_grant(*, role: str, password: str | None = None, using: str = "default") -> RoleGrants:
    """Create (or bring back in line) the runtime role and grant exactly its privileges on every
    table of the public schema. Run as the database owner or a superuser."""
    connection = connections[using]
    identifier = sql.Identifier(role)
    with transaction.atomic(using=using), connection.cursor() as cursor:
        exists, privileged = _role_exists(cursor, role)
        if privileged:
            raise RoleError(
                f"The role {role} is a superuser or can bypass row security or create roles; the "
                "runtime role must not. Choose another name or remove those attributes."
            )
        attributes = sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS")
        if password:
            attributes = sql.SQL("{} PASSWORD {}").format(attributes, sql.Literal(password))
        verb = sql.SQL("ALTER ROLE") if exists else sql.SQL("CREATE ROLE")
        _execute(cursor, sql.SQL("{} {} {}").format(verb, identifier, attributes))

        database = sql.Identifier(connection.settings_dict["NAME"])
        _execute(
            cursor, sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(database, identifier)
        )
        _execute(cursor, sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}").format(identifier))
        _execute(cursor, sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(identifier))

        append_only = append_only_tables()
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
        granted: dict[str, tuple[str, ...]] = {}
        for (table,) in cursor.fetchall():
            privileges = privileges_for(table, append_only)
            name = sql.Identifier(table)
            _execute(cursor, sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(name, identifier))
            _execute(
                cursor,
                sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(sql.SQL(p) for p in privileges), name, identifier
                ),
            )
            granted[table] = privileges
        _execute(
            cursor, sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(identifier)
        )
    return RoleGrants(role=role, created=not exists, tables=granted)
