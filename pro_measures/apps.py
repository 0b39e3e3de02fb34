from django.apps import AppConfig


class ProMeasuresConfig(AppConfig):
    name = "pro_measures"
