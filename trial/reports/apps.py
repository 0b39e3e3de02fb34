from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReportsConfig(AppConfig):
    """PDF visit reports: the read side (ARCHITECTURE.md), never imported by a domain app."""

    name = "trial.reports"
    label = "reports"
    verbose_name = _("Visit reports")
