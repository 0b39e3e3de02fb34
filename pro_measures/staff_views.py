"""The coordinators' questionnaire pages: a participant's invitations with their state, times and
reminders (resend, revoke, enter a paper questionnaire), the site-wide list filtered by state, and
the FHIR R4 downloads (an instrument's Questionnaire, a response's QuestionnaireResponse).

Views are thin: a form validates, one service in `pro_measures.invitations` writes, the view
redirects. A role without the permission gets a 403 before any record is looked up; a record of
another site is a 404 (`visible_to`). Times are shown in the participant's site's zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import FormView, TemplateView

from participants.models import Participant, ParticipantStatus
from participants.visit_forms import add_service_error
from participants.visits import site_today
from pro_measures import fhir
from pro_measures.instruments import INSTRUMENTS
from pro_measures.invitations import invitation_resend, invitation_revoke, response_enter_paper
from pro_measures.models import (
    OPEN_STATUSES,
    Invitation,
    InvitationStatus,
    Reminder,
    ReminderKind,
    ReminderState,
    Response,
    ResponseSource,
)
from pro_measures.staff_forms import OPEN, InvitationFilterForm, PaperResponseForm, RevokeForm
from trial.locks import ReadOnlyWhenLockedMixin

PAGE_SIZE = 50

# --- States in words (never colour alone) -------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    code: str
    label: str
    css: str


STATE_CSS = {
    InvitationStatus.SCHEDULED: "text-bg-secondary",
    InvitationStatus.SENT: "text-bg-info",
    InvitationStatus.OPENED: "text-bg-info",
    InvitationStatus.IN_PROGRESS: "text-bg-primary",
    InvitationStatus.COMPLETED: "text-bg-success",
    InvitationStatus.EXPIRED: "text-bg-warning",
    InvitationStatus.REVOKED: "text-bg-dark",
}
REMINDER_CSS = {
    ReminderState.PENDING: "text-bg-light border",
    ReminderState.SENDING: "text-bg-info",
    ReminderState.SENT: "text-bg-success",
    ReminderState.CANCELLED: "text-bg-secondary",
    ReminderState.FAILED: "text-bg-danger",
}


def state_badge(invitation: Invitation, now: dt.datetime) -> Badge:
    state = invitation.status_at(now)
    return Badge(state, str(InvitationStatus(state).label), STATE_CSS[state])


@dataclass(frozen=True)
class ReminderRow:
    reminder: Reminder
    kind: str
    badge: Badge


@dataclass(frozen=True)
class TimeRow:
    label: str
    at: dt.datetime | None
    note: str = ""


def score_text(value: Decimal | None) -> str:
    """A score as people write it: 0.375, 10, 2.4 (no trailing zeros, no exponent); None is
    "not scorable" (too few answers), never zero."""
    if value is None:
        return _("not scorable")
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "0") else text


@dataclass(frozen=True)
class ScoreRow:
    label: str
    value: Decimal | None

    @property
    def text(self) -> str:
        return score_text(self.value)


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    title: str
    badge: Badge
    times: list[TimeRow]
    reminders: list[ReminderRow]
    response: Response | None
    source: str
    scores: list[ScoreRow]
    can_resend: bool
    can_revoke: bool
    can_enter_paper: bool
    can_download: bool


@dataclass(frozen=True)
class VisitGroup:
    visit_code: str
    visit_name: str
    rows: list[InvitationRow]


def invitation_times(invitation: Invitation) -> list[TimeRow]:
    return [
        TimeRow(_("Opens"), invitation.opens_at),
        TimeRow(_("E-mailed"), invitation.sent_at),
        TimeRow(_("Opened"), invitation.opened_at),
        TimeRow(_("First answer"), invitation.started_at),
        TimeRow(_("Completed"), invitation.completed_at),
        TimeRow(_("Revoked"), invitation.revoked_at, invitation.revoked_reason),
        TimeRow(_("Valid until"), invitation.valid_until),
    ]


def reminder_row(reminder: Reminder) -> ReminderRow:
    state = ReminderState(reminder.state)
    return ReminderRow(
        reminder,
        str(ReminderKind(reminder.kind).label) if reminder.sequence < 100 else _("Sent again by staff"),
        Badge(state.value, str(state.label), REMINDER_CSS[state]),
    )


def _response_of(invitation: Invitation) -> Response | None:
    try:
        return invitation.response
    except Response.DoesNotExist:
        return None


def response_source(response: Response | None) -> str:
    if response is None:
        return ""
    if response.source == ResponseSource.PAPER:
        who = (response.entered_by.full_name or response.entered_by.email) if response.entered_by else "?"
        return _("Paper form, entered by %(who)s") % {"who": who}
    return str(ResponseSource(response.source).label)


def invitation_row(invitation: Invitation, *, user, now: dt.datetime) -> InvitationRow:
    """One invitation as the page shows it. Needs `response`, `response.entered_by`, the
    prefetched `reminders` and `response.scores`, and `participant`: runs no query."""
    definition = INSTRUMENTS.get(invitation.instrument_code)
    badge = state_badge(invitation, now)
    response = _response_of(invitation)
    labels = {s.name: str(s.label) for s in definition.scores} if definition else {}
    scores = (
        [ScoreRow(labels.get(score.name, score.name), score.value) for score in response.scores.all()]
        if response is not None
        else []
    )
    can_change = user.has_perm("pro_measures.change_invitation")
    on_study = invitation.participant.status == ParticipantStatus.ON_STUDY
    is_open = badge.code in OPEN_STATUSES
    return InvitationRow(
        invitation=invitation,
        title=str(definition.title) if definition else invitation.instrument_code,
        badge=badge,
        times=invitation_times(invitation),
        reminders=[reminder_row(r) for r in invitation.reminders.all()],
        response=response,
        source=response_source(response),
        scores=scores,
        # Without an e-mail address the tick would cancel the resend: paper entry is the way.
        can_resend=can_change and is_open and on_study and bool(invitation.participant.email),
        can_revoke=can_change and is_open,
        # The paper service accepts an invitation still open in the database, even past its window
        # (a paper form handed in late is still the patient's answer).
        can_enter_paper=can_change
        and user.has_perm("pro_measures.add_response")
        and invitation.status in OPEN_STATUSES,
        can_download=response is not None and user.has_perm("pro_measures.view_response"),
    )


# --- A participant's questionnaires ---------------------------------------------------------------


class ParticipantInvitationsView(PermissionRequiredMixin, TemplateView):
    """Every invitation of one participant, by visit, with times, reminders and actions."""

    permission_required = "pro_measures.view_invitation"
    template_name = "pro_measures/staff/invitation_list.html"

    @cached_property
    def participant(self) -> Participant:
        return get_object_or_404(
            Participant.objects.visible_to(self.request.user).select_related("site"), pk=self.kwargs["pk"]
        )

    def get_context_data(self, **kwargs):
        participant, user, now = self.participant, self.request.user, timezone.now()
        invitations = (
            Invitation.objects.filter(participant=participant)
            .select_related("visit", "response__entered_by")
            .prefetch_related(
                Prefetch("reminders", queryset=Reminder.objects.order_by("due_at", "id")),
                "response__scores",
            )
            .order_by("visit__sequence", "visit__target_date", "id")
        )
        groups: dict[int, VisitGroup] = {}
        for invitation in invitations:
            invitation.participant = participant  # the same row: no query per invitation
            visit = invitation.visit
            group = groups.setdefault(visit.pk, VisitGroup(visit.code, str(visit.name), []))
            group.rows.append(invitation_row(invitation, user=user, now=now))
        for group in groups.values():
            order = {code: n for n, code in enumerate(INSTRUMENTS)}
            group.rows.sort(key=lambda row: order.get(row.invitation.instrument_code, len(order)))
        return super().get_context_data(
            participant=participant,
            groups=list(groups.values()),
            site_zone=participant.site.time_zone,
            has_email=bool(participant.email),
            can_view_timeline=user.has_perm("participants.view_visit"),
            **kwargs,
        )


# --- The site-wide list -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewRow:
    invitation: Invitation
    title: str
    badge: Badge


class InvitationOverviewView(PermissionRequiredMixin, TemplateView):
    """Every invitation at the current site (or all the user's sites), filtered by state and
    questionnaire, newest first, 50 a page."""

    permission_required = "pro_measures.view_invitation"
    template_name = "pro_measures/staff/invitation_overview.html"

    def get_context_data(self, **kwargs):
        now = timezone.now()
        form = InvitationFilterForm(self.request.GET or None)
        invitations = Invitation.objects.visible_to(self.request.user)
        site = self.request.site
        if site is not None:
            invitations = invitations.filter(participant__site=site)
        state = code = ""
        if form.is_bound and form.is_valid():
            state, code = form.cleaned_data["state"], form.cleaned_data["questionnaire"]
        if state == OPEN:
            invitations = invitations.filter(status__in=OPEN_STATUSES, valid_until__gte=now)
        elif state:
            invitations = invitations.in_state(state, now=now)
        if code:
            invitations = invitations.filter(instrument_code=code)
        invitations = invitations.select_related("participant__site", "visit").order_by(
            "-opens_at", "participant__study_id", "instrument_code", "id"
        )
        page = Paginator(invitations, PAGE_SIZE).get_page(self.request.GET.get("page"))
        rows = [
            OverviewRow(
                invitation,
                str(INSTRUMENTS[invitation.instrument_code].title)
                if invitation.instrument_code in INSTRUMENTS
                else invitation.instrument_code,
                state_badge(invitation, now),
            )
            for invitation in page.object_list
        ]
        query = self.request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            form=form, rows=rows, page=page, scope=site, filter_query=query.urlencode(), **kwargs
        )


# --- Actions --------------------------------------------------------------------------------------------


class InvitationScopedMixin(PermissionRequiredMixin):
    """The invitation of the URL, if the user's sites include its participant's (else 404)."""

    @cached_property
    def invitation(self) -> Invitation:
        return get_object_or_404(
            Invitation.objects.visible_to(self.request.user).select_related("participant__site", "visit"),
            pk=self.kwargs["pk"],
        )

    def back(self):
        return redirect(f"{self.invitation.get_absolute_url()}#invitation-{self.invitation.pk}")

    def get_context_data(self, **kwargs):
        invitation = self.invitation
        definition = INSTRUMENTS[invitation.instrument_code]
        return super().get_context_data(
            invitation=invitation,
            participant=invitation.participant,
            definition=definition,
            badge=state_badge(invitation, timezone.now()),
            **kwargs,
        )


class InvitationResendView(InvitationScopedMixin, View):
    """POST: e-mail the questionnaire again now (a new link; earlier links keep working)."""

    permission_required = "pro_measures.change_invitation"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        invitation = self.invitation
        try:
            invitation_resend(actor=request.user, invitation=invitation)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return self.back()
        if invitation.participant.email:
            messages.success(
                request,
                _("%(title)s will be e-mailed again within a few minutes.")
                % {"title": INSTRUMENTS[invitation.instrument_code].title},
            )
        else:
            messages.warning(
                request,
                _(
                    "There is no e-mail address for this participant: the e-mail cannot go out. Enter a paper questionnaire instead."
                ),
            )
        return self.back()


class InvitationRevokeView(InvitationScopedMixin, FormView):
    """Revoke with a reason: every link stops working, pending reminders are cancelled."""

    permission_required = "pro_measures.change_invitation"
    form_class = RevokeForm
    template_name = "pro_measures/staff/invitation_revoke.html"

    def dispatch(self, request, *args, **kwargs):
        if not self.has_permission():
            return self.handle_no_permission()
        if self.invitation.status_at(timezone.now()) not in OPEN_STATUSES:
            messages.info(
                request,
                _("This questionnaire is %(state)s: only an open one can be revoked.")
                % {"state": state_badge(self.invitation, timezone.now()).label.lower()},
            )
            return self.back()
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        try:
            invitation_revoke(
                actor=self.request.user, invitation=self.invitation, reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            add_service_error(form, exc)
            return self.form_invalid(form)
        messages.success(
            self.request,
            _("%(title)s at %(visit)s is revoked; its links no longer work and no reminder will be sent.")
            % {
                "title": INSTRUMENTS[self.invitation.instrument_code].title,
                "visit": self.invitation.visit.code,
            },
        )
        return self.back()


class PaperResponseView(InvitationScopedMixin, ReadOnlyWhenLockedMixin, FormView):
    """A paper questionnaire entered on the patient's behalf: the whole instrument on one page."""

    permission_required = ("pro_measures.add_response", "pro_measures.change_invitation")
    template_name = "pro_measures/staff/paper_form.html"

    def dispatch(self, request, *args, **kwargs):
        if not self.has_permission():
            return self.handle_no_permission()
        if self.invitation.status not in OPEN_STATUSES:
            messages.info(
                request,
                _("This questionnaire is %(state)s: a paper form can no longer be entered.")
                % {"state": state_badge(self.invitation, timezone.now()).label.lower()},
            )
            return self.back()
        return super().dispatch(request, *args, **kwargs)

    @cached_property
    def today(self) -> dt.date:
        return site_today(self.invitation.participant.site)

    def lock_scope(self) -> dict:
        return {"visit": self.invitation.visit}

    def get_form(self, form_class=None):
        return PaperResponseForm(**self.get_form_kwargs(), invitation=self.invitation, today=self.today)

    def get_initial(self):
        return {"completed_on": self.today}

    def form_valid(self, form):
        invitation = self.invitation
        completed_on = form.cleaned_data["completed_on"]
        try:
            response = response_enter_paper(
                actor=self.request.user,
                invitation=invitation,
                answers=form.cleaned_answers(),
                completed_on=completed_on,
                blanks_confirmed=form.cleaned_data["blanks_confirmed"],
            )
        except ValidationError as exc:
            add_service_error(form, exc)
            return self.form_invalid(form)
        definition = INSTRUMENTS[invitation.instrument_code]
        labels = {s.name: s.label for s in definition.scores}
        scores = "; ".join(
            f"{labels.get(score.name, score.name)}: " + score_text(score.value)
            for score in response.scores.order_by("name")
        )
        messages.success(
            self.request,
            _("Paper %(title)s entered for %(visit)s. %(scores)s")
            % {"title": definition.title, "visit": invitation.visit.code, "scores": scores},
        )
        if completed_on > invitation.visit.window_closes:
            messages.warning(
                self.request,
                _("The form was completed after the visit window closed (%(date)s).")
                % {"date": invitation.visit.window_closes.isoformat()},
            )
        return self.back()

    def get_context_data(self, **kwargs):
        return super().get_context_data(cancel_url=self.invitation.get_absolute_url(), **kwargs)


# --- FHIR R4 downloads --------------------------------------------------------------------------------

FHIR_JSON = "application/fhir+json; charset=utf-8"


def _fhir_download(resource, file_name: str) -> HttpResponse:
    response = HttpResponse(fhir.as_json(resource), content_type=FHIR_JSON)
    response["Content-Disposition"] = f'attachment; filename="{file_name}"'
    response["Cache-Control"] = "no-store"
    return response


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class QuestionnaireFhirView(PermissionRequiredMixin, View):
    """An instrument's definition as a FHIR R4 Questionnaire."""

    permission_required = "pro_measures.view_invitation"

    def get(self, request, code: str):
        definition = INSTRUMENTS.get(code)
        if definition is None:
            raise Http404
        return _fhir_download(
            fhir.questionnaire_resource(definition), f"{code}-{definition.version}.fhir.json"
        )


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class QuestionnaireResponseFhirView(InvitationScopedMixin, View):
    """A response as a FHIR R4 QuestionnaireResponse (subject: the study id only)."""

    permission_required = "pro_measures.view_response"

    def get(self, request, pk: int):
        invitation = self.invitation
        response = Response.objects.filter(invitation=invitation).first()
        if response is None:
            raise Http404
        response.invitation = invitation
        file_name = f"{invitation.participant.study_id}-{invitation.visit.code}-{invitation.instrument_code}.fhir.json"
        return _fhir_download(fhir.questionnaire_response_resource(response), file_name)


urlpatterns = [
    path("questionnaires/", InvitationOverviewView.as_view(), name="invitation-overview"),
    path(
        "participants/<int:pk>/questionnaires/",
        ParticipantInvitationsView.as_view(),
        name="invitation-list",
    ),
    path("questionnaires/<int:pk>/resend/", InvitationResendView.as_view(), name="invitation-resend"),
    path("questionnaires/<int:pk>/revoke/", InvitationRevokeView.as_view(), name="invitation-revoke"),
    path("questionnaires/<int:pk>/paper/", PaperResponseView.as_view(), name="invitation-paper"),
    path(
        "questionnaires/<int:pk>/response.fhir.json",
        QuestionnaireResponseFhirView.as_view(),
        name="fhir-questionnaire-response",
    ),
    path(
        "questionnaires/definitions/<slug:code>.fhir.json",
        QuestionnaireFhirView.as_view(),
        name="fhir-questionnaire",
    ),
]
