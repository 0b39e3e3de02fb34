from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TrialConfig(AppConfig):
    name = "trial"
    verbose_name = "Trial"

    def ready(self) -> None:
        from trial import checks  # noqa: F401 - registers the start-up checks
        from trial.roles import roles_sync_after_migrate

        # Infrastructure, like Django's own permission creation: the role groups and their
        # permissions follow the code after every migrate (and every test-database flush).
        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="trial.roles_sync")
        # Register every app's tasks in every process, not only in workers (Celery's autodiscovery
        # waits for a worker's start): a task announced by name (participants.services._announce)
        # then resolves to the task itself, so eager mode and routing apply to it as to .delay().
        from trial.celery import app

        app.autodiscover_tasks(force=True)
