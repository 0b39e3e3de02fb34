"""The screening log report: CONSORT-style counts and the log of everyone screened, with a CSV.

It shows screening numbers and study ids, never names, so monitors and data managers read the same
page as the site team. Screen failures stay in the log with the criteria they failed, named in words
from the protocol (trial.protocol.PROTOCOL.criteria).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe
from django.views.generic import TemplateView

from participants.models import (
    ConsentRecord,
    EligibilityAssessment,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
)
from trial.protocol import PROTOCOL

# The log's columns, named by the model fields they show: the page's and the CSV's headers are
# the fields' verbose names, so they cannot drift from the data dictionary.
LOG_COLUMNS = (
    (Screening, "screening_number"),
    (Screening, "site"),
    (Screening, "screening_date"),
    (Screening, "outcome"),
    (EligibilityAssessment, "failing_criteria"),
    (Participant, "study_id"),
)


LOG_FIELDS = (
    "screening_number",
    "site__code",
    "screening_date",
    "outcome",
    "eligibility__failing_criteria",
    "participant__study_id",
)


def log_headers() -> list[str]:
    return [str(capfirst(model._meta.get_field(name).verbose_name)) for model, name in LOG_COLUMNS]


@dataclass(frozen=True)
class CriterionCount:
    code: str
    kind: str
    text: str
    count: int


@dataclass(frozen=True)
class ScreeningCounts:
    """The CONSORT flow of screening. A person failing two criteria counts under each criterion
    but once in `not_eligible`."""

    screened: int
    in_screening: int
    not_eligible: int
    by_criterion: list[CriterionCount]
    eligible: int  # met every criterion: awaiting enrolment, declined / not enrolled, or enrolled
    awaiting_enrolment: int
    declined: int
    consented: int  # signed a consent form (any version)
    enrolled: int
    withdrawn: int  # enrolled, then withdrew or was withdrawn early
    completed: int


def _criterion_key(code: str) -> str:
    return f"fails_{code}"


def screening_counts(screenings: QuerySet[Screening]) -> ScreeningCounts:
    """Counts for a set of screenings, in one query whatever its size."""
    failure = Q(outcome=ScreeningOutcome.SCREEN_FAILURE)
    criterion_counts = {
        _criterion_key(c.code): Count(
            "pk", filter=failure & Q(eligibility__failing_criteria__contains=[c.code])
        )
        for c in PROTOCOL.criteria
    }
    totals = (
        screenings.order_by()
        .annotate(has_consent=Exists(ConsentRecord.objects.filter(screening=OuterRef("pk"))))
        .aggregate(
            screened=Count("pk"),
            in_screening=Count("pk", filter=Q(outcome=ScreeningOutcome.IN_SCREENING)),
            not_eligible=Count("pk", filter=failure),
            awaiting_enrolment=Count("pk", filter=Q(outcome=ScreeningOutcome.ELIGIBLE)),
            declined=Count("pk", filter=Q(outcome=ScreeningOutcome.DECLINED)),
            enrolled=Count("pk", filter=Q(outcome=ScreeningOutcome.ENROLLED)),
            consented=Count("pk", filter=Q(has_consent=True)),
            withdrawn=Count("pk", filter=Q(participant__status=ParticipantStatus.WITHDRAWN)),
            completed=Count("pk", filter=Q(participant__status=ParticipantStatus.COMPLETED)),
            **criterion_counts,
        )
    )
    return ScreeningCounts(
        screened=totals["screened"],
        in_screening=totals["in_screening"],
        not_eligible=totals["not_eligible"],
        by_criterion=[
            CriterionCount(c.code, c.kind, str(c.text), totals[_criterion_key(c.code)])
            for c in PROTOCOL.criteria
        ],
        eligible=totals["awaiting_enrolment"] + totals["declined"] + totals["enrolled"],
        awaiting_enrolment=totals["awaiting_enrolment"],
        declined=totals["declined"],
        consented=totals["consented"],
        enrolled=totals["enrolled"],
        withdrawn=totals["withdrawn"],
        completed=totals["completed"],
    )


@dataclass(frozen=True)
class LogRow:
    """One line of the log, as shown to anyone with the log (no identifying data)."""

    screening_number: str
    site_code: str
    screening_date: dt.date
    outcome: str
    outcome_label: str
    failing_criteria: list[str]  # "IN2: Over 18 years of age"
    study_id: str

    def cells(self) -> list[str]:
        """The values in LOG_COLUMNS order, as text."""
        return [
            self.screening_number,
            self.site_code,
            self.screening_date.isoformat(),
            self.outcome_label,
            "; ".join(self.failing_criteria),
            self.study_id,
        ]


def _criteria_in_words(codes: list[str]) -> list[str]:
    texts = {c.code: str(c.text) for c in PROTOCOL.criteria}
    # A code the current protocol no longer has still shows, as its code.
    return [f"{code}: {texts[code]}" if code in texts else code for code in codes]


def log_rows(screenings: QuerySet[Screening]) -> list[LogRow]:
    rows = []
    # Only the columns the log shows leave the database: names and dates of birth are never read.
    screenings = screenings.for_log().only(*LOG_FIELDS).order_by("screening_date", "screening_number")
    for screening in screenings:
        assessment = getattr(screening, "eligibility", None)
        participant = getattr(screening, "participant", None)
        rows.append(
            LogRow(
                screening_number=screening.screening_number,
                site_code=screening.site.code,
                screening_date=screening.screening_date,
                outcome=screening.outcome,
                outcome_label=str(screening.get_outcome_display()),
                failing_criteria=_criteria_in_words(assessment.failing_criteria if assessment else []),
                study_id=participant.study_id if participant else "",
            )
        )
    return rows


class ScreeningLogFilterForm(forms.Form):
    """Optional filters from the query string; invalid values are reported, never a server error."""

    screened_from = forms.DateField(
        label=_("Screened from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    screened_to = forms.DateField(
        label=_("Screened until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    outcome = forms.ChoiceField(
        label=_("Outcome (log table)"),
        required=False,
        choices=[("", _("Any outcome")), *ScreeningOutcome.choices],
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("screened_from"), data.get("screened_to")
        if start and end and end < start:
            self.add_error("screened_to", _("The end of the period is before its start."))
        return data

    def period(self, screenings: QuerySet[Screening]) -> QuerySet[Screening]:
        data = self.cleaned_data if self.is_valid() else {}
        if data.get("screened_from"):
            screenings = screenings.filter(screening_date__gte=data["screened_from"])
        if data.get("screened_to"):
            screenings = screenings.filter(screening_date__lte=data["screened_to"])
        return screenings

    def outcome_filter(self, screenings: QuerySet[Screening]) -> QuerySet[Screening]:
        outcome = self.cleaned_data.get("outcome") if self.is_valid() else ""
        return screenings.filter(outcome=outcome) if outcome else screenings


def _csv_safe(value: str) -> str:
    """Spreadsheets run cells that start with these as formulas (CSV injection)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


@method_decorator(require_safe, name="dispatch")  # the page and its CSV: GET and HEAD only
class ScreeningLogView(PermissionRequiredMixin, TemplateView):
    """`?format=csv` downloads the same log (with the same filters) as CSV."""

    permission_required = "participants.view_screening"
    template_name = "participants/screening_log.html"

    def get(self, request, *args, **kwargs):
        self.filter_form = ScreeningLogFilterForm(request.GET or None)
        if self.filter_form.is_bound and not self.filter_form.is_valid():
            # The page says what is wrong with the filters; a CSV would silently ignore them.
            return self.render_to_response(self.get_context_data())
        screenings = self.filter_form.period(self.screenings_in_scope())
        if request.GET.get("format") == "csv":
            return self.csv_response(screenings)
        return self.render_to_response(
            self.get_context_data(
                counts=screening_counts(screenings),
                rows=log_rows(self.filter_form.outcome_filter(screenings)),
            )
        )

    def screenings_in_scope(self) -> QuerySet[Screening]:
        """The current site's screenings, or those of all the user's sites."""
        screenings = Screening.objects.visible_to(self.request.user)
        return screenings.filter(site=self.request.site) if self.request.site is not None else screenings

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            filter_form=self.filter_form,
            filters_valid=not self.filter_form.errors,
            scope=self.request.site,
            headers=log_headers(),
            csv_query=self._csv_query(),
            **kwargs,
        )

    def _csv_query(self) -> str:
        query = self.request.GET.copy()
        query["format"] = "csv"
        return query.urlencode()

    def csv_response(self, screenings: QuerySet[Screening]) -> HttpResponse:
        scope = self.request.site.code if self.request.site is not None else "all-sites"
        filename = f"screening-log-{scope}-{timezone.localdate().isoformat()}.csv"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["X-Content-Type-Options"] = "nosniff"
        writer = csv.writer(response)
        writer.writerow(log_headers())
        for row in log_rows(self.filter_form.outcome_filter(screenings)):
            writer.writerow([_csv_safe(cell) for cell in row.cells()])
        return response


urlpatterns = [
    path("screening/log/", ScreeningLogView.as_view(), name="screening-log"),
]
