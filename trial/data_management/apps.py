from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DataManagementConfig(AppConfig):
    """Monitoring and data management, the read side: queries (data clarification), source data
    verification and locks."""

    name = "trial.data_management"
    label = "data_management"
    verbose_name = _("Data management")
