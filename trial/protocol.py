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
from enum import StrEnum
from typing import Any, Protocol

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


def _yes(attribute: str, failure: str) -> Callable[[EligibilityAnswers, EligibilityRules], Finding]:
    def evaluate(a: EligibilityAnswers, rules: EligibilityRules) -> Finding:
        value = getattr(a, attribute)
        if value is None:
            return Finding(Outcome.UNANSWERED)
        return Finding(Outcome.MET) if value else Finding(Outcome.NOT_MET, failure)

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
        _yes("capable_of_consent", str(_("Not competent to give informed consent."))),
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
        _yes("needs_symptomatic_relief", str(_("Does not need symptomatic relief."))),
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


@dataclass(frozen=True)
class ProtocolDefinition:
    code: str
    version: str
    title: str
    eligibility: EligibilityRules = field(default_factory=EligibilityRules)
    criteria: tuple[Criterion, ...] = CRITERIA

    def assess(self, answers: EligibilityAnswers | Any) -> EligibilityResult:
        return EligibilityResult(
            tuple(CriterionResult(c, c.evaluate(answers, self.eligibility)) for c in self.criteria)
        )


PROTOCOL = ProtocolDefinition(
    code="STS-CALCINOSIS",
    version="1.0",
    title="Intralesional sodium thiosulfate for calcinosis in SSc, MCTD and inflammatory myopathy",
)
