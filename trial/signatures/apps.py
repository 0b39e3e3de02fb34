from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SignaturesConfig(AppConfig):
    """Investigators' electronic signatures (21 CFR 11.50, 11.70, 11.200): the read side."""

    name = "trial.signatures"
    label = "signatures"
    verbose_name = _("Electronic signatures")
