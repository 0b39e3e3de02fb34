from django.apps import AppConfig


class LesionsConfig(AppConfig):
    name = "lesions"

    def ready(self) -> None:
        from lesions import checks  # noqa: F401 - registers the deployment check
