from django.apps import AppConfig


class LesionsConfig(AppConfig):
    name = "lesions"
