"""Safety pages: adverse events (more views land with the visit pages)."""

from __future__ import annotations

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.urls import path
from django.views.generic import DetailView

from participants.models import AdverseEvent


class AdverseEventDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "participants.view_adverseevent"
    template_name = "participants/adverse_event_detail.html"
    context_object_name = "event"

    def get_queryset(self):
        return AdverseEvent.objects.visible_to(self.request.user).select_related(
            "participant", "reported_at_visit", "reported_by"
        )


urlpatterns = [
    path("adverse-events/<int:pk>/", AdverseEventDetailView.as_view(), name="adverse-event-detail"),
]
