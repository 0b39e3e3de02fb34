"""`manage.py backup [--to DIR]`: the database and the uploaded files, with a manifest of hashes."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from trial.backup import BackupError, backup_create


class Command(BaseCommand):
    help = "Back up the database (audit trail included) and MEDIA_ROOT into a new folder."
    requires_system_checks: list = []

    def add_arguments(self, parser):
        parser.add_argument(
            "--to",
            default=str(Path(settings.BASE_DIR) / "var" / "backups"),
            help="folder to write the backup folder into (default var/backups)",
        )

    def handle(self, *args, **options):
        try:
            folder = backup_create(Path(options["to"]))
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Backup written to {folder}")
