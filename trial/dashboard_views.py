"""The investigator dashboard page: thin, the numbers come from `trial.dashboard`."""

from __future__ import annotations

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.utils.functional import SimpleLazyObject
from django.views.generic import TemplateView

from trial.dashboard import dashboard_cache_key, dashboard_for


class DashboardView(PermissionRequiredMixin, TemplateView):
    """Investigators, monitors, data managers and coordinators: everyone who may see the
    participants of a site may see its aggregate numbers (study ids only, nothing identifying)."""

    permission_required = "participants.view_participant"
    template_name = "trial/dashboard.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user, site = self.request.user, self.request.site
        # The page's body is cached under a key that changes with any change of the data it
        # shows (trial.dashboard.dashboard_cache_key); the figures are computed only on a miss.
        context["dashboard_key"] = dashboard_cache_key(user=user, site=site)
        context["dashboard"] = SimpleLazyObject(lambda: dashboard_for(user=user, site=site))
        return context
