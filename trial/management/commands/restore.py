"""`manage.py restore BACKUP_DIR [--database NAME] [--media-root DIR]`: into a new database only."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from trial.backup import BackupError, Database, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup folder into a new or empty database and media folder, then check every "
        "file's SHA-256 and every table's row count against the backup's manifest."
    )
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument("backup", help="a folder written by `manage.py backup`")
        parser.add_argument(
            "--database",
            default=os.environ.get("RESTORE_DATABASE") or None,
            help="database to restore into (created if missing; must be empty). Default: RESTORE_DATABASE "
            "or the database of DATABASE_URL",
        )
        parser.add_argument(
            "--media-root",
            default=os.environ.get("RESTORE_MEDIA_ROOT") or str(settings.MEDIA_ROOT),
            help="folder for the uploaded files (must be empty). Default: RESTORE_MEDIA_ROOT or MEDIA_ROOT",
        )

    def handle(self, *args, **options):
        database = Database.from_settings(options["database"])
        try:
            result = backup_restore(
                Path(options["backup"]), database=database, media_root=Path(options["media_root"])
            )
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Restored into database {result.database}: {result.tables} tables, {result.rows} rows "
            f"(audit events included), {result.files} files in {result.media_root}; all match the manifest."
        )
