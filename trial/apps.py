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
