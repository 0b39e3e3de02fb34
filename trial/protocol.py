"""The protocol of the STS calcinosis trial, as typed objects a reviewer can read.

The study registration fixes the eligibility criteria (../shared/seeds, DOMAIN.md s.2); values it
leaves open (the pregnancy-test window, the schedule, doses) are settings here, never constants in a
form. Changing the protocol is a reviewed code change with a new `PROTOCOL.version`; records keep
the version they were assessed or planned under. `trial.checks` validates the definition at
start-up.

This module imports nothing from the apps: the criteria evaluate any object that has the answer
attributes they name (the participants app's eligibility form provides them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _


class Diagnosis(StrEnum):
    SYSTEMIC_SCLEROSIS = "ssc"
    MIXED_CONNECTIVE_TISSUE_DISEASE = "mctd"
    INFLAMMATORY_MYOPATHY = "iim"
    OTHER = "other"


QUALIFYING_DIAGNOSES = frozenset(
    {Diagnosis.SYSTEMIC_SCLEROSIS, Diagnosis.MIXED_CONNECTIVE_TISSUE_DISEASE, Diagnosis.INFLAMMATORY_MYOPATHY}
)


class EligibilityAnswers(Protocol):
    """What the criteria read. Unanswered questions are None."""

    date_of_birth: dt.date | None
    screening_date: dt.date | None
    diagnosis: str | None
    capable_of_consent: bool | None
    calcinosis_evidence: bool | None
    calcinosis_modality: str | None
    calcinosis_evidence_date: dt.date | None
    needs_symptomatic_relief: bool | None
    childbearing_potential: bool | None
    pregnancy_test_date: dt.date | None
    pregnancy_test_result: str | None
    non_childbearing_reason: str | None


class Outcome(StrEnum):
    MET = "met"
    NOT_MET = "not_met"
    UNANSWERED = "unanswered"


@dataclass(frozen=True)
class Finding:
    outcome: Outcome
    explanation: str = ""


def anniversary(born: dt.date, years: int) -> dt.date:
    """The date `years` after `born`; a 29 February birthday falls on 1 March in common years."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return dt.date(born.year + years, 3, 1)


def age_in_years(born: dt.date, on: dt.date) -> int:
    """Completed years of age on a date."""
    years = on.year - born.year
    if years > 0 and on < anniversary(born, years):
        years -= 1
    return years


@dataclass(frozen=True)
class Criterion:
    code: str
    kind: str  # "inclusion" | "exclusion"
    text: str  # as the protocol words it
    evaluate: Callable[[EligibilityAnswers, EligibilityRules], Finding]
    fields: tuple[str, ...]  # the answers it reads: the form shows their errors next to them


@dataclass(frozen=True)
class EligibilityRules:
    # "Must be over 18 years of age": older than 18 on the screening date; the 18th birthday
    # itself does not qualify.
    minimum_age_years: int = 18
    # A negative pregnancy test counts when taken within this many days of the screening date.
    pregnancy_test_window_days: int = 7
    pregnancy_test_types: tuple[str, ...] = ("urine_hcg", "serum_hcg")


def _diagnosis(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
    if not a.diagnosis:
        return Finding(Outcome.UNANSWERED)
    if a.diagnosis in QUALIFYING_DIAGNOSES:
        return Finding(Outcome.MET)
    return Finding(Outcome.NOT_MET, str(_("The diagnosis is not SSc, MCTD or an inflammatory myopathy.")))


def _age(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
    if a.date_of_birth is None or a.screening_date is None:
        return Finding(Outcome.UNANSWERED)
    birthday = anniversary(a.date_of_birth, rules.minimum_age_years)
    if a.screening_date > birthday:
        return Finding(Outcome.MET)
    return Finding(
        Outcome.NOT_MET,
        str(_("Not over %(years)s on the screening date (turns %(years)s on %(date)s)."))
        % {"years": rules.minimum_age_years, "date": birthday.isoformat()},
    )


def _yes(attribute: str, failure) -> Callable[[EligibilityAnswers, EligibilityRules], Finding]:
    def evaluate(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
        value = getattr(a, attribute)
        if value is None:
            return Finding(Outcome.UNANSWERED)
        return Finding(Outcome.MET) if value else Finding(Outcome.NOT_MET, str(failure))

    return evaluate


def _calcinosis(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
    if a.calcinosis_evidence is None:
        return Finding(Outcome.UNANSWERED)
    if not a.calcinosis_evidence:
        return Finding(Outcome.NOT_MET, str(_("No radiographic evidence of calcinosis.")))
    if not a.calcinosis_modality or a.calcinosis_evidence_date is None:
        return Finding(Outcome.UNANSWERED)
    if a.screening_date and a.calcinosis_evidence_date > a.screening_date:
        return Finding(Outcome.NOT_MET, str(_("The imaging date is after the screening date.")))
    return Finding(Outcome.MET)


def _not_pregnant(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
    """Exclusion: pregnancy. Met (i.e. not excluded) by a negative test in the window for a woman
    of child-bearing potential, or a documented reason she is not of child-bearing potential."""
    if a.childbearing_potential is None:
        return Finding(Outcome.UNANSWERED)
    if not a.childbearing_potential:
        if not a.non_childbearing_reason:
            return Finding(Outcome.UNANSWERED)
        return Finding(Outcome.MET)
    if a.pregnancy_test_date is None or not a.pregnancy_test_result:
        return Finding(Outcome.UNANSWERED)
    if a.pregnancy_test_result == "positive":
        return Finding(Outcome.NOT_MET, str(_("Pregnancy test positive.")))
    if a.pregnancy_test_result != "negative":
        return Finding(Outcome.NOT_MET, str(_("Pregnancy test result is not negative.")))
    if a.screening_date is not None:
        days = abs((a.pregnancy_test_date - a.screening_date).days)
        if days > rules.pregnancy_test_window_days:
            return Finding(
                Outcome.NOT_MET,
                str(
                    _(
                        "The pregnancy test is %(days)s days from the screening date; it must be within %(window)s."
                    )
                )
                % {"days": days, "window": rules.pregnancy_test_window_days},
            )
    return Finding(Outcome.MET)


CRITERIA: tuple[Criterion, ...] = (
    Criterion(
        "IN1",
        "inclusion",
        _(
            "Clinical diagnosis of systemic sclerosis, mixed connective tissue disease or inflammatory myopathy"
        ),
        _diagnosis,
        ("diagnosis", "diagnosis_date"),
    ),
    Criterion("IN2", "inclusion", _("Over 18 years of age"), _age, ("date_of_birth",)),
    Criterion(
        "IN3",
        "inclusion",
        _("Competent to give informed consent"),
        _yes("capable_of_consent", _("Not competent to give informed consent.")),
        ("capable_of_consent",),
    ),
    Criterion(
        "IN4",
        "inclusion",
        _("Radiographic evidence (x-ray or ultrasound) of calcinosis"),
        _calcinosis,
        ("calcinosis_evidence", "calcinosis_modality", "calcinosis_evidence_date"),
    ),
    Criterion(
        "IN5",
        "inclusion",
        _("Needs symptomatic relief"),
        _yes("needs_symptomatic_relief", _("Does not need symptomatic relief.")),
        ("needs_symptomatic_relief",),
    ),
    Criterion(
        "EX1",
        "exclusion",
        _("Pregnant women are excluded"),
        _not_pregnant,
        (
            "childbearing_potential",
            "pregnancy_test_type",
            "pregnancy_test_date",
            "pregnancy_test_result",
            "non_childbearing_reason",
        ),
    ),
)


@dataclass(frozen=True)
class CriterionResult:
    criterion: Criterion
    finding: Finding

    @property
    def code(self) -> str:
        return self.criterion.code


@dataclass(frozen=True)
class EligibilityResult:
    results: tuple[CriterionResult, ...]

    @property
    def failing(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if r.finding.outcome == Outcome.NOT_MET)

    @property
    def unanswered(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if r.finding.outcome == Outcome.UNANSWERED)

    @property
    def is_complete(self) -> bool:
        return not self.unanswered

    @property
    def is_eligible(self) -> bool:
        return self.is_complete and not self.failing

    @property
    def status(self) -> str:
        if self.failing:
            return "not_eligible"
        return "eligible" if self.is_complete else "incomplete"


# --- Visit schedule (DOMAIN.md s.3; the registration fixes none of it) -----------------------


class Form(StrEnum):
    """The forms a visit can expect. A visit definition naming anything else fails the start-up check."""

    ELIGIBILITY = "eligibility"
    CONSENT = "consent"
    PREGNANCY_TEST = "pregnancy_test"
    MEASUREMENTS = "measurements"
    INJECTIONS = "injections"
    PROS = "pros"
    AE_REVIEW = "ae_review"


FORM_LABELS = {
    Form.ELIGIBILITY: _("Eligibility checklist"),
    Form.CONSENT: _("Informed consent"),
    Form.PREGNANCY_TEST: _("Pregnancy test"),
    Form.MEASUREMENTS: _("Ultrasound measurements"),
    Form.INJECTIONS: _("STS injections"),
    Form.PROS: _("Questionnaires"),
    Form.AE_REVIEW: _("Adverse event review"),
}


class VisitKind(StrEnum):
    SCREENING = "screening"  # recorded by the screening log, before enrolment
    SCHEDULED = "scheduled"  # planned at enrolment
    UNSCHEDULED = "unscheduled"  # added when needed


@dataclass(frozen=True)
class VisitDefinition:
    code: str
    name: str  # lazily translated
    kind: VisitKind
    target_day: int  # days after baseline (day 0 = baseline visit)
    window_before_days: int
    window_after_days: int
    forms: frozenset[Form]
    instruments: tuple[str, ...] = ()  # questionnaire codes due at this visit

    @property
    def first_day(self) -> int:
        return self.target_day - self.window_before_days

    @property
    def last_day(self) -> int:
        return self.target_day + self.window_after_days

    def window(self, baseline: dt.date) -> tuple[dt.date, dt.date, dt.date]:
        """(window opens, target date, window closes) for a baseline date; all inclusive dates."""
        target = baseline + dt.timedelta(days=self.target_day)
        return (
            target - dt.timedelta(days=self.window_before_days),
            target,
            target + dt.timedelta(days=self.window_after_days),
        )


_INJECTION_VISIT_FORMS = frozenset(
    {Form.PREGNANCY_TEST, Form.MEASUREMENTS, Form.INJECTIONS, Form.PROS, Form.AE_REVIEW}
)
_FOLLOW_UP_FORMS = frozenset({Form.MEASUREMENTS, Form.PROS, Form.AE_REVIEW})
_PRO_INSTRUMENTS = ("pain_nrs", "activity_vas", "ptga", "haq_di", "shaq_vas", "cochin")


def _injection_visit(week: int) -> VisitDefinition:
    return VisitDefinition(
        f"W{week}",
        format_lazy(_("Week {week}: injection {n}"), week=week, n=week // 4 + 1),
        VisitKind.SCHEDULED,
        target_day=7 * week,
        window_before_days=7,
        window_after_days=7,
        forms=_INJECTION_VISIT_FORMS,
        instruments=_PRO_INSTRUMENTS,
    )


def _follow_up_visit(week: int) -> VisitDefinition:
    return VisitDefinition(
        f"W{week}",
        format_lazy(_("Week {week}: follow-up"), week=week),
        VisitKind.SCHEDULED,
        target_day=7 * week,
        window_before_days=14,
        window_after_days=14,
        forms=_FOLLOW_UP_FORMS,
        instruments=_PRO_INSTRUMENTS,
    )


DEFAULT_SCHEDULE: tuple[VisitDefinition, ...] = (
    VisitDefinition(
        "SCR",
        _("Screening"),
        VisitKind.SCREENING,
        target_day=-14,
        window_before_days=14,
        window_after_days=14,
        forms=frozenset({Form.ELIGIBILITY, Form.CONSENT}),
    ),
    # Baseline: day 0 is the day of the first injection; planned from the enrolment date and
    # allowed up to a week later. The later visits are re-planned from the actual baseline date.
    VisitDefinition(
        "W0",
        _("Baseline: injection 1"),
        VisitKind.SCHEDULED,
        target_day=0,
        window_before_days=0,
        window_after_days=7,
        forms=_INJECTION_VISIT_FORMS,
        instruments=_PRO_INSTRUMENTS,
    ),
    _injection_visit(4),
    _injection_visit(8),
    _injection_visit(12),
    _follow_up_visit(16),
    _follow_up_visit(24),
)
UNSCHEDULED_VISIT = VisitDefinition(
    "UNS",
    _("Unscheduled visit"),
    VisitKind.UNSCHEDULED,
    target_day=0,
    window_before_days=0,
    window_after_days=0,
    forms=frozenset({Form.MEASUREMENTS, Form.INJECTIONS, Form.PREGNANCY_TEST, Form.AE_REVIEW}),
)


def schedule_problems(visits: tuple[VisitDefinition, ...], unscheduled: VisitDefinition) -> list[str]:
    """What is inconsistent in a schedule; empty when it is sound (run by the start-up check)."""
    problems = []
    codes = [v.code for v in (*visits, unscheduled)]
    if len(codes) != len(set(codes)):
        problems.append("visit codes must be unique")
    for visit in (*visits, unscheduled):
        unknown = set(visit.forms) - set(Form)
        if unknown:
            problems.append(f"{visit.code} expects unknown forms {sorted(map(str, unknown))}")
        if visit.window_before_days < 0 or visit.window_after_days < 0:
            problems.append(f"{visit.code} has a negative window")
    scheduled = sorted((v for v in visits if v.kind == VisitKind.SCHEDULED), key=lambda v: v.target_day)
    if not scheduled or scheduled[0].target_day != 0:
        problems.append("the first scheduled visit must be the baseline at day 0")
    for earlier, later in zip(scheduled, scheduled[1:], strict=False):
        if later.first_day <= earlier.last_day:
            problems.append(
                f"windows of {earlier.code} (days {earlier.first_day}..{earlier.last_day}) and "
                f"{later.code} (days {later.first_day}..{later.last_day}) overlap"
            )
    for visit in visits:
        if visit.kind == VisitKind.SCREENING and scheduled and visit.last_day > 0:
            problems.append(f"screening visit {visit.code} must end by the baseline day")
    return problems


# --- Dosing (DOMAIN.md s.3). DEMO VALUES: the protocol team must set the real ones. --------------


@dataclass(frozen=True)
class DosingRules:
    # STS 250 mg/mL is the US product (50 mL single-dose vial); published series also used 150.
    concentrations_mg_per_ml: tuple[Decimal, ...] = (Decimal("250"), Decimal("150"))
    default_concentration_mg_per_ml: Decimal = Decimal("250")
    max_volume_per_lesion_ml: Decimal = Decimal("2.0")  # DEMO VALUE
    max_total_dose_per_session_mg: Decimal = Decimal("2500")  # DEMO VALUE (10 mL at 250 mg/mL)
    # A woman of child-bearing potential needs a negative test this many days before injection.
    pregnancy_test_days_before_injection: int = 3  # DEMO VALUE
    are_demo_values: bool = True


# --- Questionnaire invitations and reminders (DOMAIN.md s.5, s.7) ----------------------------------


@dataclass(frozen=True)
class ReminderRules:
    """When patients and coordinators are e-mailed. Every send happens at `send_hour_local` in
    the recipient's time zone: no e-mails at 3 a.m. Changing these re-times reminders not yet sent."""

    send_hour_local: int = 9
    invitation_days_after_window_opens: int = 0
    reminder_days_after_invitation: tuple[int, ...] = (3, 7)
    last_call_days_before_window_closes: int = 1
    visit_reminder_days_before: int = 2
    coordinator_digest_hour_local: int = 8

    @property
    def fingerprint(self) -> str:
        """Identifies this version of the rules on each reminder row (to re-time unsent ones)."""
        import hashlib

        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ProtocolDefinition:
    code: str
    version: str
    title: str
    eligibility: EligibilityRules = field(default_factory=EligibilityRules)
    criteria: tuple[Criterion, ...] = CRITERIA
    schedule: tuple[VisitDefinition, ...] = DEFAULT_SCHEDULE
    unscheduled_visit: VisitDefinition = UNSCHEDULED_VISIT
    dosing: DosingRules = field(default_factory=DosingRules)
    reminders: ReminderRules = field(default_factory=ReminderRules)
    enrolment_target: int = 30  # DEMO VALUE: participants to enrol over all sites (dashboard funnel)

    def visit(self, code: str) -> VisitDefinition:
        for visit in (*self.schedule, self.unscheduled_visit):
            if visit.code == code:
                return visit
        raise KeyError(code)

    @property
    def planned_visits(self) -> tuple[VisitDefinition, ...]:
        return tuple(v for v in self.schedule if v.kind == VisitKind.SCHEDULED)

    def assess(self, answers: EligibilityAnswers | Any) -> EligibilityResult:
        return EligibilityResult(
            tuple(CriterionResult(c, c.evaluate(answers, self.eligibility)) for c in self.criteria)
        )


PROTOCOL = ProtocolDefinition(
    code="STS-CALCINOSIS",
    version="1.0",
    title="Intralesional sodium thiosulfate for calcinosis in SSc, MCTD and inflammatory myopathy",
)
