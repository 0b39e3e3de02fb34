from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExportsConfig(AppConfig):
    """Exports (CSV, ODM, de-identified, audit trail): the read side, never imported by a domain app."""

    name = "trial.exports"
    label = "exports"
    verbose_name = _("Exports")
