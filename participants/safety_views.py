"""Safety pages: the pregnancy test and AE review of a visit, adverse events (report, follow up
with a reason and optimistic locking, list, detail) and protocol deviations.

Thin views over `participants.safety`: a form validates, one service writes, the view redirects.
Another site's record is a 404; a role without the permission gets a 403.
"""

from __future__ import annotations

import copy
from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.generic import DetailView, TemplateView

from participants import safety
from participants.models import (
    AdverseEvent,
    AEReview,
    Participant,
    PregnancyTestResult,
    ProtocolDeviation,
    SeriousnessCriterion,
    Visit,
)
from participants.visit_forms import (
    AdverseEventChangeForm,
    AdverseEventForm,
    AEReviewChangeForm,
    AEReviewForm,
    DeviationForm,
    PregnancyTestForm,
)
from participants.visit_views import ParticipantScopedMixin, ServiceFormView, VisitScopedMixin
from participants.visits import site_today
from trial.concurrency import CONFLICT_MESSAGE, EditConflict, conflict_rows, with_current_version
from trial.locks import ReadOnlyWhenLockedMixin, lock_in_force
from trial.models import Site

PAGE_SIZE = 25


def _id_from_query(raw: str | None) -> int | None:
    """An id passed in the query string; anything that is not a whole number is a 404."""
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise Http404
    return int(raw)


def criteria_labels(event: AdverseEvent) -> list[str]:
    labels = dict(SeriousnessCriterion.choices)
    return [str(labels.get(code, code)) for code in event.seriousness_criteria]


# --- Pregnancy test and AE review at a visit -------------------------------------------------


class PregnancyTestCreateView(VisitScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.add_pregnancytest"
    form_class = PregnancyTestForm
    template_name = "participants/pregnancy_test_form.html"

    def get_initial(self):
        return {"test_date": self.visit.visit_date or self.today}

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            tests=list(self.visit.pregnancy_tests.order_by("-test_date", "-id")), **kwargs
        )

    def call_service(self, form):
        test = safety.pregnancy_test_record(
            actor=self.request.user, participant=self.participant, visit=self.visit, **form.cleaned_data
        )
        if test.result == PregnancyTestResult.POSITIVE:
            messages.error(
                self.request,
                _("Positive pregnancy test recorded: no injection may be given. Inform the investigator."),
            )
        else:
            messages.success(
                self.request,
                _("Pregnancy test recorded: %(result)s.") % {"result": test.get_result_display()},
            )
        return redirect(self.visit)


class AEReviewView(VisitScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.add_aereview"
    template_name = "participants/ae_review_form.html"

    @cached_property
    def review(self) -> AEReview | None:
        return AEReview.objects.filter(visit=self.visit).first()

    def get_form_class(self):
        return AEReviewForm if self.review is None else AEReviewChangeForm

    def get_initial(self):
        if self.review is None:
            return {}
        return {
            "new_events": "yes" if self.review.new_events else "no",
            "row_version": self.review.row_version,
        }

    def get_context_data(self, **kwargs):
        kwargs.setdefault("conflicts", [])
        return super().get_context_data(review=self.review, **kwargs)

    def call_service(self, form):
        try:
            review = safety.ae_review_record(
                actor=self.request.user,
                visit=self.visit,
                new_events=form.cleaned_data["new_events"],
                reason=form.cleaned_data.get("reason", ""),
                expected_version=form.cleaned_data.get("row_version"),
            )
        except EditConflict:
            return self.conflict(form)
        if review.new_events:
            messages.info(self.request, _("Review saved. Now record the adverse event."))
            url = reverse("participants:adverse-event-create", args=[self.participant.pk])
            return redirect(f"{url}?visit={self.visit.pk}")
        messages.success(self.request, _("Adverse event review saved: no new events."))
        return redirect(self.visit)

    def conflict(self, form):
        """Someone saved the review after this form was opened: the saved answer is shown, the
        user's choice and reason are kept, and saving again (now a correction) is their choice."""
        current = AEReview.objects.get(visit=self.visit)
        self.review = current
        again = AEReviewChangeForm(data=with_current_version(self.request.POST, current.row_version))
        again.is_valid()
        again.add_error(None, CONFLICT_MESSAGE)
        conflicts = conflict_rows(again, saved=current, yours=form.cleaned_data, names=["new_events"])
        return self.render_to_response(self.get_context_data(form=again, conflicts=conflicts))


# --- Adverse events ---------------------------------------------------------------------------


class AdverseEventListView(ParticipantScopedMixin, TemplateView):
    permission_required = "participants.view_adverseevent"
    template_name = "participants/adverse_event_list.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        events = self.participant.adverse_events.select_related("reported_at_visit").order_by(
            "-reported_at", "-id"
        )
        return super().get_context_data(
            events=list(events),
            can_add=user.has_perm("participants.add_adverseevent")
            and lock_in_force(participant=self.participant) is None,
            **kwargs,
        )


class AdverseEventCreateView(ParticipantScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    """Report an adverse event; `?visit=<pk>` preselects the visit (from the AE review)."""

    permission_required = "participants.add_adverseevent"
    template_name = "participants/adverse_event_form.html"

    @cached_property
    def preselected_visit(self) -> Visit | None:
        visit_id = _id_from_query(self.request.GET.get("visit"))
        if visit_id is None:
            return None
        return get_object_or_404(self.participant.visits, pk=visit_id)

    def get_form(self, form_class=None):
        return AdverseEventForm(
            **self.get_form_kwargs(),
            instance=AdverseEvent(participant=self.participant),
            participant=self.participant,
            today=self.today,
        )

    def get_initial(self):
        return {"reported_at_visit": self.preselected_visit}

    def get_context_data(self, **kwargs):
        return super().get_context_data(editing=False, conflicts=[], **kwargs)

    def call_service(self, form):
        event = safety.adverse_event_record(
            actor=self.request.user, participant=self.participant, values=form.service_values()
        )
        if event.serious:
            messages.warning(
                self.request,
                _("Serious adverse event recorded: the site's investigators are being e-mailed now."),
            )
        else:
            messages.success(self.request, _("Adverse event recorded."))
        return redirect(event.reported_at_visit or event)


class AdverseEventUpdateView(ParticipantScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    """Follow-up of an event: needs a reason; a concurrent save is refused with the input kept."""

    permission_required = "participants.change_adverseevent"
    template_name = "participants/adverse_event_form.html"

    def event_queryset(self):
        return AdverseEvent.objects.visible_to(self.request.user).select_related(
            "participant__site", "participant__screening__eligibility", "reported_at_visit"
        )

    @cached_property
    def event(self) -> AdverseEvent:
        return get_object_or_404(self.event_queryset(), pk=self.kwargs["pk"])

    @cached_property
    def participant(self) -> Participant:
        return self.event.participant

    def lock_scope(self) -> dict:
        return {"visit": self.event.reported_at_visit, "participant": self.participant}

    def form_for(self, event: AdverseEvent, **kwargs) -> AdverseEventChangeForm:
        # The form writes the answers onto its instance while validating: give it a copy, so the
        # service still compares with the record as saved.
        return AdverseEventChangeForm(
            **kwargs, instance=copy.copy(event), participant=self.participant, today=self.today
        )

    def get_form(self, form_class=None):
        return self.form_for(self.event, **self.get_form_kwargs())

    def get_initial(self):
        return {"row_version": self.event.row_version}

    def get_context_data(self, **kwargs):
        kwargs.setdefault("conflicts", [])
        return super().get_context_data(editing=True, event=self.event, **kwargs)

    def call_service(self, form):
        expected = form.cleaned_data["row_version"]
        try:
            event = safety.adverse_event_update(
                actor=self.request.user,
                event=self.event,
                values=form.service_values(),
                reason=form.cleaned_data["reason"],
                expected_version=expected,
            )
        except EditConflict:
            return self.conflict(form)
        if event.row_version == expected:
            messages.info(self.request, _("Nothing was changed."))
        elif event.serious and event.investigators_notified_at is None:
            messages.warning(
                self.request,
                _("Adverse event updated. It is serious: the site's investigators are being e-mailed now."),
            )
        else:
            messages.success(self.request, _("Adverse event updated."))
        return redirect(event)

    def conflict(self, form):
        """Someone saved after this form was opened: show their values next to the user's, keep
        the user's input, and take the current version so that saving again is a choice."""
        current = self.event_queryset().get(pk=self.event.pk)
        again = self.form_for(current, data=with_current_version(self.request.POST, current.row_version))
        again.is_valid()
        again.add_error(None, CONFLICT_MESSAGE)
        conflicts = conflict_rows(
            again, saved=current, yours=form.cleaned_data, names=AdverseEventForm._meta.fields
        )
        return self.render_to_response(self.get_context_data(form=again, conflicts=conflicts))


class AdverseEventDetailView(PermissionRequiredMixin, DetailView):
    permission_required = "participants.view_adverseevent"
    template_name = "participants/adverse_event_detail.html"
    context_object_name = "event"

    def get_queryset(self):
        return AdverseEvent.objects.visible_to(self.request.user).select_related(
            "participant__site", "reported_at_visit", "reported_by"
        )

    def get_context_data(self, **kwargs):
        event = self.object
        return super().get_context_data(
            criteria=criteria_labels(event),
            can_edit=self.request.user.has_perm("participants.change_adverseevent")
            and lock_in_force(visit=event.reported_at_visit, participant=event.participant) is None,
            **kwargs,
        )


# --- Deviations -------------------------------------------------------------------------------


class DeviationListView(PermissionRequiredMixin, TemplateView):
    """The protocol deviations of the current site, or of all the user's sites."""

    permission_required = "participants.view_protocoldeviation"
    template_name = "participants/deviation_list.html"

    def get_context_data(self, **kwargs):
        request = self.request
        deviations = ProtocolDeviation.objects.visible_to(request.user).select_related(
            "site", "participant", "reported_by"
        )
        if request.site is not None:
            deviations = deviations.filter(site=request.site)
        page = Paginator(deviations, PAGE_SIZE).get_page(request.GET.get("page"))
        return super().get_context_data(
            page=page,
            deviations=list(page),
            scope=request.site,
            can_add=request.user.has_perm("participants.add_protocoldeviation")
            and lock_in_force() is None,  # only a study lock covers the whole list
            **kwargs,
        )


class DeviationCreateView(PermissionRequiredMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    """Report a deviation; `?participant=<pk>` preselects the participant and their site."""

    permission_required = "participants.add_protocoldeviation"
    template_name = "participants/deviation_form.html"

    @cached_property
    def sites(self):
        sites = Site.objects.visible_to(self.request.user).filter(is_active=True).order_by("code")
        if self.request.site is not None:
            sites = sites.filter(pk=self.request.site.pk)
        return sites

    @cached_property
    def participants(self):
        return (
            Participant.objects.visible_to(self.request.user)
            .filter(site__in=self.sites)
            .select_related("site")
            .order_by("study_id")
        )

    @cached_property
    def preselected_participant(self) -> Participant | None:
        participant_id = _id_from_query(self.request.GET.get("participant"))
        if participant_id is None:
            return None
        return get_object_or_404(self.participants, pk=participant_id)

    def lock_scope(self) -> dict:
        return {"participant": self.preselected_participant}

    def get_form(self, form_class=None):
        return DeviationForm(**self.get_form_kwargs(), sites=self.sites, participants=self.participants)

    def get_initial(self):
        participant = self.preselected_participant
        site = participant.site if participant else self.request.site
        if site is None:
            only = list(self.sites[:2])
            site = only[0] if len(only) == 1 else None
        initial = {"participant": participant, "site": site}
        if site is not None:
            initial["occurred_on"] = site_today(site)
        return initial

    def get_context_data(self, **kwargs):
        return super().get_context_data(participant=self.preselected_participant, **kwargs)

    def call_service(self, form):
        data = form.cleaned_data
        deviation = safety.deviation_record(
            actor=self.request.user,
            site=data["site"],
            participant=data["participant"],
            occurred_on=data["occurred_on"],
            category=data["category"],
            description=data["description"],
            corrective_action=data["corrective_action"],
        )
        messages.success(
            self.request,
            _("Protocol deviation recorded: %(category)s.") % {"category": deviation.get_category_display()},
        )
        if deviation.participant_id:
            return redirect(deviation.participant)
        return redirect("participants:deviation-list")


urlpatterns = [
    path("visits/<int:pk>/pregnancy-test/", PregnancyTestCreateView.as_view(), name="visit-pregnancy-test"),
    path("visits/<int:pk>/ae-review/", AEReviewView.as_view(), name="visit-ae-review"),
    path("participants/<int:pk>/adverse-events/", AdverseEventListView.as_view(), name="adverse-event-list"),
    path(
        "participants/<int:pk>/adverse-events/new/",
        AdverseEventCreateView.as_view(),
        name="adverse-event-create",
    ),
    path("adverse-events/<int:pk>/", AdverseEventDetailView.as_view(), name="adverse-event-detail"),
    path("adverse-events/<int:pk>/edit/", AdverseEventUpdateView.as_view(), name="adverse-event-edit"),
    path("deviations/", DeviationListView.as_view(), name="deviation-list"),
    path("deviations/new/", DeviationCreateView.as_view(), name="deviation-create"),
]
