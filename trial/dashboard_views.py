"""The investigator dashboard page: thin, the numbers come from `trial.dashboard`."""

from __future__ import annotations

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView

from trial.dashboard import dashboard_for


class DashboardView(PermissionRequiredMixin, TemplateView):
    """Investigators, monitors, data managers and coordinators: everyone who may see the
    participants of a site may see its aggregate numbers (study ids only, nothing identifying)."""

    permission_required = "participants.view_participant"
    template_name = "trial/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["dashboard"] = dashboard_for(user=self.request.user, site=self.request.site)
        return context
