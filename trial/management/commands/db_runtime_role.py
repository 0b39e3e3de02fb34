"""`manage.py db_runtime_role`: the least-privilege role web, worker and beat connect as."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand, CommandError

from trial.database_roles import APPEND, READ, WRITE, RoleError, runtime_role_grant


class Command(BaseCommand):
    help = (
        "Create or update the runtime PostgreSQL role (default edc_app) and grant it exactly what the "
        "running site needs: read/write on clinical tables, insert-only on the audit trail. Run as the "
        "database owner after every migrate."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", default=os.environ.get("DATABASE_RUNTIME_ROLE", "edc_app"))
        parser.add_argument(
            "--password",
            default=os.environ.get("DATABASE_RUNTIME_PASSWORD") or None,
            help="login password (default DATABASE_RUNTIME_PASSWORD; none: trust/peer authentication)",
        )

    def handle(self, *args, **options):
        try:
            grants = runtime_role_grant(role=options["role"], password=options["password"])
        except RoleError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Runtime role {grants.role} {'created' if grants.created else 'updated'}: "
            f"read/write on {grants.count(WRITE)} tables, insert-only on {grants.count(APPEND)} audit tables, "
            f"read-only on {grants.count(READ)}."
        )
