"""Visit pages: the coordinator's today list, the visit page that leads through its forms in order,
and completing, missing or adding a visit. A participant's timeline combines every app, so it is
on the read side (`trial.timeline`), which uses the helpers here.

Views are thin: a form validates, one service in `participants.visits` writes, the view redirects.
A role without the permission gets a 403; a record of another site is a 404 (`visible_to`).
Dates people mean as dates are the site's local dates (`site_today`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404, redirect
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.generic import FormView, TemplateView

from participants import visits as visit_services
from participants.models import (
    Participant,
    ParticipantStatus,
    Visit,
    VisitState,
    VisitStatus,
)
from participants.visit_forms import (
    UnscheduledVisitForm,
    VisitCompleteForm,
    VisitMissForm,
    add_service_error,
)
from participants.visits import site_today
from trial.locks import ReadOnlyWhenLockedMixin, lock_in_force
from trial.pagination import PAGE_SIZE, ListPage, list_page
from trial.protocol import FORM_LABELS, PROTOCOL, Form

# --- Shared page plumbing (used by the safety pages too) ---------------------------------------


class ServiceFormView(FormView):
    """Gather, call one service, return. A service's refusal goes back on the form."""

    def call_service(self, form):  # pragma: no cover - each view defines it
        raise NotImplementedError

    def form_valid(self, form):
        try:
            return self.call_service(form)
        except ValidationError as exc:
            add_service_error(form, exc)
            return self.form_invalid(form)


class ParticipantScopedMixin(PermissionRequiredMixin):
    """The participant of the URL, if the user's sites include theirs (else 404)."""

    participant_url_kwarg = "pk"

    @cached_property
    def participant(self) -> Participant:
        return get_object_or_404(
            Participant.objects.visible_to(self.request.user).select_related(
                "site", "screening__eligibility"
            ),
            pk=self.kwargs[self.participant_url_kwarg],
        )

    @cached_property
    def today(self) -> dt.date:
        return site_today(self.participant.site)

    def lock_scope(self) -> dict:
        return {"participant": self.participant}

    def get_context_data(self, **kwargs):
        return super().get_context_data(participant=self.participant, **kwargs)


class VisitScopedMixin(ParticipantScopedMixin):
    """The visit of the URL, if the user's sites include its participant's (else 404)."""

    def get_visit_queryset(self) -> QuerySet[Visit]:
        return Visit.objects.visible_to(self.request.user).select_related(
            "participant__site", "participant__screening__eligibility"
        )

    @cached_property
    def visit(self) -> Visit:
        return get_object_or_404(self.get_visit_queryset(), pk=self.kwargs["pk"])

    @cached_property
    def participant(self) -> Participant:
        return self.visit.participant

    def lock_scope(self) -> dict:
        return {"visit": self.visit}

    def get_context_data(self, **kwargs):
        return super().get_context_data(visit=self.visit, **kwargs)


def childbearing_potential(participant: Participant) -> bool:
    """Whether the participant's visits expect a pregnancy test. Unknown counts as yes: a test too
    many is safer than an injection without one."""
    eligibility = getattr(participant.screening, "eligibility", None)
    answer = eligibility.childbearing_potential if eligibility is not None else None
    return answer is not False


def lesion_table_url(visit: Visit) -> str:
    """The measurement + injection table of a visit (built in the lesions app)."""
    try:
        return reverse("lesions:visit-table", args=[visit.pk])
    except NoReverseMatch:
        return f"/visits/{visit.pk}/lesions/"


# --- States in words (never colour alone) -----------------------------------------------------


@dataclass(frozen=True)
class Badge:
    label: str
    css: str


VISIT_STATE_CSS = {
    VisitState.PLANNED: "text-bg-secondary",
    VisitState.DUE: "text-bg-primary",
    VisitState.OVERDUE: "text-bg-danger",
    VisitState.COMPLETED: "text-bg-success",
    VisitState.MISSED: "text-bg-warning",
}


def visit_badge(visit: Visit, today: dt.date) -> Badge:
    state = visit.state_on(today)
    return Badge(str(VisitState(state).label), VISIT_STATE_CSS[state])


class FormProgress:
    DONE = "done"
    MISSING = "missing"
    NOT_YET_DUE = "not_yet_due"
    VISIT_MISSED = "visit_missed"
    NOT_AVAILABLE = "not_available"


# The questionnaires app's completed state, named here by value: this app imports no app above it.
QUESTIONNAIRE_COMPLETED = "completed"

FORM_PROGRESS_BADGES = {
    FormProgress.DONE: (gettext_lazy("Done"), "text-bg-success"),
    FormProgress.MISSING: (gettext_lazy("Missing"), "text-bg-danger"),
    FormProgress.NOT_YET_DUE: (gettext_lazy("Not yet due"), "text-bg-secondary"),
    FormProgress.VISIT_MISSED: (gettext_lazy("Not done: visit missed"), "text-bg-secondary"),
    FormProgress.NOT_AVAILABLE: (gettext_lazy("Not yet available"), "text-bg-light border"),
}


@dataclass(frozen=True)
class FormStatus:
    form: Form
    label: str
    progress: str
    badge: Badge
    detail: str = ""


def with_form_data(visits: QuerySet[Visit]) -> QuerySet[Visit]:
    """Annotate each visit with the data its forms left: measurement, injection and pregnancy
    test rows at that visit, its questionnaires (invited and completed), and its AE review. One
    query, whatever the number of visits.

    The rows are counted through the visit's reverse relations by name (`measurements` and
    `injections` are the lesions app's, `invitations` the questionnaires'), so this app imports no
    app above it."""

    def count(relation: str, condition: Q | None = None):
        rows = (
            Visit.objects.filter(pk=OuterRef("pk"))
            .order_by()
            .annotate(n=Count(relation, filter=condition))
            .values("n")[:1]
        )
        return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))

    return visits.select_related("ae_review").annotate(
        n_measurements=count("measurements"),
        n_injections=count("injections"),
        n_pregnancy_tests=count("pregnancy_tests"),
        n_questionnaires=count("invitations"),
        n_questionnaires_done=count("invitations", Q(invitations__status=QUESTIONNAIRE_COMPLETED)),
    )


def form_statuses(visit: Visit, *, today: dt.date, childbearing: bool) -> list[FormStatus]:
    """Each expected form of an annotated visit (`with_form_data`): done, missing or not yet due."""
    state = visit.state_on(today)
    review = getattr(visit, "ae_review", None)
    statuses = []
    for form in visit.expected_forms(childbearing_potential=childbearing):
        detail = ""
        if form in (Form.MEASUREMENTS, Form.INJECTIONS):
            rows = visit.n_measurements if form == Form.MEASUREMENTS else visit.n_injections
            done = rows > 0
            detail = ngettext("%(n)s lesion", "%(n)s lesions", rows) % {"n": rows} if done else ""
        elif form == Form.PREGNANCY_TEST:
            done = visit.n_pregnancy_tests > 0
        elif form == Form.AE_REVIEW:
            done = review is not None
            if done:
                detail = _("new events reported") if review.new_events else _("no new events")
        elif form == Form.PROS:
            # Expected by the protocol, or invited (an invitation may outlive a protocol change).
            total = max(len(visit.definition.instruments), visit.n_questionnaires)
            completed = visit.n_questionnaires_done
            done = completed >= total
            detail = _("%(done)s of %(total)s done") % {"done": completed, "total": total}
        else:
            # Screening forms are not captured on visits.
            done = None
        if done is None:
            progress = FormProgress.NOT_AVAILABLE
        elif done:
            progress = FormProgress.DONE
        elif state == VisitState.PLANNED:
            progress = FormProgress.NOT_YET_DUE
        elif state == VisitState.MISSED:
            progress = FormProgress.VISIT_MISSED
        else:
            progress = FormProgress.MISSING
        label, css = FORM_PROGRESS_BADGES[progress]
        statuses.append(FormStatus(form, str(FORM_LABELS[form]), progress, Badge(str(label), css), detail))
    return statuses


# --- Today ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TodayRow:
    """One visit of the today list, with every cell's text worked out once here: the page shows up
    to 150 rows, and a template's per-row lookups, url reversing and plural translations cost more
    than the rest of the request."""

    visit: Visit
    today: dt.date  # the site's date
    days: int  # days left in the window, or days overdue
    url: str
    study_id: str
    code: str
    label: str  # "W4: Week 4"
    target: str  # ISO dates
    window: str
    days_text: str
    site_code: str

    @classmethod
    def of(cls, visit: Visit, *, today: dt.date, overdue: bool, url: str) -> TodayRow:
        if overdue:
            days = (today - visit.window_closes).days
            days_text = ngettext("%(days)s day overdue", "%(days)s days overdue", days) % {"days": days}
        else:
            days = (visit.window_closes - today).days
            days_text = (
                _("Window closes today")
                if days == 0
                else ngettext("%(days)s day left", "%(days)s days left", days) % {"days": days}
            )
        participant = visit.participant
        return cls(
            visit=visit,
            today=today,
            days=days,
            url=url,
            study_id=participant.study_id,
            code=visit.code,
            label=f"{visit.code}: {visit.name}",
            target=visit.target_date.isoformat(),
            window=f"{visit.window_opens.isoformat()} – {visit.window_closes.isoformat()}",
            days_text=days_text,
            site_code=participant.site.code,
        )


# A row of a today list table (participants/today.html shows them as `section.rows_html`).
# Written out here, not by the template: at 150 rows the template's eight lookups and escapes a
# row were over half of the page's rendering (render 20.7 -> 14.1 ms CPU at N = 10,000).
TODAY_ROW_HTML = (
    '\n    <tr data-visit="{study_id} {code}">\n      <th scope="row">{study_id}</th>\n'
    '      <td><a href="{url}">{label}</a></td>\n      <td>{target}</td>\n      <td>{window}</td>\n'
    "      <td>{days_text}</td>\n      <td>{site_code}</td>\n    </tr>\n    "
)


@dataclass(frozen=True)
class TodaySection:
    key: str
    title: str
    rows: list[TodayRow]  # this page's
    empty: str
    page: ListPage

    @property
    def rows_html(self) -> SafeString:
        """The rows as the table's body, every cell escaped."""
        return format_html_join(
            "",
            TODAY_ROW_HTML,
            (
                {
                    "study_id": row.study_id,
                    "code": row.code,
                    "url": row.url,
                    "label": row.label,
                    "target": row.target,
                    "window": row.window,
                    "days_text": row.days_text,
                    "site_code": row.site_code,
                }
                for row in self.rows
            ),
        )


TODAY_PAGE_SIZE = PAGE_SIZE  # visits per section and page

TODAY_SECTIONS = (
    # (anchor, section of visit_services.TodayList, title, when empty)
    (
        "due-today",
        "due_today",
        gettext_lazy("Due today"),
        gettext_lazy("No visit has its target date today."),
    ),
    ("in-window", "in_window", gettext_lazy("In window"), gettext_lazy("No other visit is in its window.")),
    ("overdue", "overdue", gettext_lazy("Overdue"), gettext_lazy("No overdue visits.")),
)


class TodayView(PermissionRequiredMixin, TemplateView):
    """Visits due today, in window and overdue, at the current site or all the user's sites; each
    section a page at a time (`?due_today_page=`, `?in_window_page=`, `?overdue_page=`) with its
    total. Queries: a count of all three sections and one page of each, at any size."""

    permission_required = "participants.view_visit"
    template_name = "participants/today.html"

    def get_context_data(self, **kwargs):
        site = self.request.site
        result = visit_services.today_list(user=self.request.user, sites=[site] if site else None)

        # Visit.get_absolute_url reversed once, not once a row: the pattern's prefix and the pk.
        visit_url = reverse("participants:visit-detail", args=[0]).removesuffix("0/")

        def row(visit: Visit, *, overdue: bool) -> TodayRow:
            today = result.todays[visit.participant.site_id]
            return TodayRow.of(visit, today=today, overdue=overdue, url=f"{visit_url}{visit.pk}/")

        sections = []
        for key, name, title, empty in TODAY_SECTIONS:
            page = list_page(
                getattr(result, name),
                query=self.request.GET,
                param=f"{name}_page",
                count=result.counts[name],
                per_page=TODAY_PAGE_SIZE,
                fragment=key,
            )
            rows = [row(visit, overdue=name == "overdue") for visit in page]
            sections.append(TodaySection(key, str(title), rows, str(empty), page))
        return super().get_context_data(
            sections=sections, scope=site, scope_today=result.todays[site.pk] if site else None, **kwargs
        )


# --- One visit --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step of a visit, in the order the coordinator fills them in."""

    title: str
    forms: list[FormStatus]
    url: str | None
    action: str
    shows_dosing: bool = False

    @property
    def done(self) -> bool:
        return all(form.progress == FormProgress.DONE for form in self.forms)


class VisitDetailView(VisitScopedMixin, TemplateView):
    permission_required = "participants.view_visit"
    template_name = "participants/visit_detail.html"

    def get_visit_queryset(self):
        return with_form_data(super().get_visit_queryset().select_related("completed_by"))

    def steps(self, statuses: list[FormStatus], *, can_edit: bool) -> list[Step]:
        visit = self.visit
        by_form = {s.form: s for s in statuses}
        steps = []
        if Form.PREGNANCY_TEST in by_form:
            steps.append(
                Step(
                    _("Pregnancy test"),
                    [by_form[Form.PREGNANCY_TEST]],
                    reverse("participants:visit-pregnancy-test", args=[visit.pk]) if can_edit else None,
                    _("Record the pregnancy test"),
                )
            )
        lesion_forms = [by_form[f] for f in (Form.MEASUREMENTS, Form.INJECTIONS) if f in by_form]
        if lesion_forms:
            title = (
                _("Ultrasound measurements and STS injections")
                if len(lesion_forms) == 2
                else lesion_forms[0].label
            )
            steps.append(
                Step(
                    title,
                    lesion_forms,
                    lesion_table_url(visit),
                    _("Open the lesion table"),
                    shows_dosing=Form.INJECTIONS in by_form,
                )
            )
        if Form.PROS in by_form:
            steps.append(Step(_("Questionnaires"), [by_form[Form.PROS]], None, ""))
        if Form.AE_REVIEW in by_form:
            steps.append(
                Step(
                    _("Adverse event review"),
                    [by_form[Form.AE_REVIEW]],
                    reverse("participants:visit-ae-review", args=[visit.pk]) if can_edit else None,
                    _("Review adverse events"),
                )
            )
        return steps

    def get_context_data(self, **kwargs):
        visit, participant, today = self.visit, self.participant, self.today
        user = self.request.user
        can_edit = (
            user.has_perm("participants.change_visit") and participant.status == ParticipantStatus.ON_STUDY
        ) and visit.status != VisitStatus.MISSED
        # Locked data are read-only: no edit buttons or forms (the lock banner says why).
        can_edit = can_edit and lock_in_force(visit=visit) is None
        statuses = form_statuses(visit, today=today, childbearing=childbearing_potential(participant))
        expects_injections = any(s.form == Form.INJECTIONS for s in statuses)
        pending = visit.status == VisitStatus.PLANNED and can_edit
        return super().get_context_data(
            badge=visit_badge(visit, today),
            steps=self.steps(statuses, can_edit=can_edit),
            today=today,
            pregnancy_tests=list(visit.pregnancy_tests.order_by("-test_date", "-id")),
            adverse_events=list(visit.adverse_events.order_by("-reported_at")),
            dosing=PROTOCOL.dosing if expects_injections else None,
            can_report_adverse_event=can_edit and user.has_perm("participants.add_adverseevent"),
            complete_form=VisitCompleteForm(initial={"visit_date": today}) if pending else None,
            miss_form=VisitMissForm() if pending else None,
            **kwargs,
        )


class VisitActionView(VisitScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_visit"

    def get(self, request, *args, **kwargs):
        if self.visit.status != VisitStatus.PLANNED:
            messages.info(
                request, _("This visit is already %(status)s.") % {"status": self.visit.get_status_display()}
            )
            return redirect(self.visit)
        return super().get(request, *args, **kwargs)


class VisitCompleteView(VisitActionView):
    form_class = VisitCompleteForm
    template_name = "participants/visit_complete.html"

    def get_initial(self):
        return {"visit_date": self.today}

    def call_service(self, form):
        visit_date = form.cleaned_data["visit_date"]
        visit = visit_services.visit_complete(
            actor=self.request.user, visit=self.visit, visit_date=visit_date
        )
        messages.success(self.request, _("Visit %(code)s completed.") % {"code": visit.code})
        if not visit.window_opens <= visit_date <= visit.window_closes:
            messages.warning(
                self.request,
                _(
                    "The visit date %(date)s is outside the window %(opens)s to %(closes)s: "
                    "record a protocol deviation (visit out of window)."
                )
                % {
                    "date": visit_date.isoformat(),
                    "opens": visit.window_opens.isoformat(),
                    "closes": visit.window_closes.isoformat(),
                },
            )
        return redirect(visit)


class VisitMissView(VisitActionView):
    form_class = VisitMissForm
    template_name = "participants/visit_miss.html"

    def call_service(self, form):
        visit = visit_services.visit_miss(
            actor=self.request.user, visit=self.visit, reason=form.cleaned_data["reason"]
        )
        messages.success(self.request, _("Visit %(code)s recorded as missed.") % {"code": visit.code})
        return redirect(visit)


class UnscheduledVisitCreateView(ParticipantScopedMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_visit"
    form_class = UnscheduledVisitForm
    template_name = "participants/visit_unscheduled_form.html"

    def get_initial(self):
        return {"visit_date": self.today}

    def call_service(self, form):
        visit = visit_services.visit_add_unscheduled(
            actor=self.request.user,
            participant=self.participant,
            visit_date=form.cleaned_data["visit_date"],
            reason=form.cleaned_data["reason"],
        )
        messages.success(self.request, _("Unscheduled visit %(code)s added.") % {"code": visit.code})
        return redirect(visit)


urlpatterns = [
    path("today/", TodayView.as_view(), name="today"),
    path(
        "participants/<int:pk>/visits/new/",
        UnscheduledVisitCreateView.as_view(),
        name="visit-add-unscheduled",
    ),
    path("visits/<int:pk>/", VisitDetailView.as_view(), name="visit-detail"),
    path("visits/<int:pk>/complete/", VisitCompleteView.as_view(), name="visit-complete"),
    path("visits/<int:pk>/miss/", VisitMissView.as_view(), name="visit-miss"),
]
