from django.apps import AppConfig


class ProMeasuresConfig(AppConfig):
    name = "pro_measures"
    verbose_name = "Patient-reported outcomes"

    def ready(self) -> None:
        from pro_measures import checks  # noqa: F401 - registers the start-up checks
