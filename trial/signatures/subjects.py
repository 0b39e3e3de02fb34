"""What can be signed, and the canonical content a signature of each is bound to.

Three kinds of subject (`SignatureKind`), each a typed object saying:
- which records are signed, as stable JSON (`records`; hashed by `trial.reports.content.sha256_of`);
- where their audit events are (`event_sources`), so that a later edit is found in one query;
- when the subject may be signed (`refusal`), and at which site (`site`).

Visit: the visit's records as the PDF report shows them (`trial.reports.content.visit_records`).
Eligibility: the screening's eligibility checklist (every criterion's answer, the computed result,
the investigator's confirmation) and the screening facts the criteria read (date of birth, sex,
screening date). End of study: the participant's end-of-study fields and the withdrawals of
consent recorded for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils.translation import gettext as _

from participants.models import (
    ConsentWithdrawal,
    EligibilityAssessment,
    EligibilityStatus,
    Participant,
    ParticipantStatus,
    Screening,
    Visit,
    VisitStatus,
)
from trial.models import Site
from trial.reports.content import record_event_sources, record_values, visit_records
from trial.signatures.models import SUBJECT_FIELDS, SUBJECT_KINDS, SignatureKind

# The screening facts the eligibility criteria read (age from date of birth and screening date;
# child-bearing potential from sex). Names and record numbers are not signed content.
SCREENING_SIGNED_FIELDS = ("id", "screening_number", "site_id", "date_of_birth", "sex", "screening_date")
# What "end of study" is: the participant's status, end date and reason. Contact details,
# language and time zone are not part of it.
END_OF_STUDY_FIELDS = (
    "id",
    "study_id",
    "site_id",
    "enrolled_on",
    "status",
    "ended_on",
    "end_reason",
    "end_reason_detail",
)


def _only(values: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {"model": values["model"], **{name: values[name] for name in fields}}


def _rows(queryset: models.QuerySet) -> list[dict[str, Any]]:
    return [record_values(obj) for obj in queryset.order_by("pk")]


def eligibility_records(screening: Screening) -> dict[str, Any]:
    """The signed eligibility: the checklist record and the screening facts its criteria read."""
    screening = Screening.objects.get(pk=screening.pk)
    assessment = EligibilityAssessment.objects.get(screening=screening)
    return {
        "screening": _only(record_values(screening), SCREENING_SIGNED_FIELDS),
        "eligibility": record_values(assessment),
    }


def end_of_study_records(participant: Participant) -> dict[str, Any]:
    """The signed end of study: status, date and reason, and every withdrawal of consent."""
    participant = Participant.objects.get(pk=participant.pk)
    return {
        "participant": _only(record_values(participant), END_OF_STUDY_FIELDS),
        "withdrawals": _rows(ConsentWithdrawal.objects.filter(screening_id=participant.screening_id)),
    }


def _visit_refusal(visit: Visit) -> str | None:
    if visit.status != VisitStatus.COMPLETED:
        return _("%(visit)s is not completed; only completed visits are signed.") % {"visit": visit}
    return None


def _eligibility_refusal(screening: Screening) -> str | None:
    if screening.eligibility.status != EligibilityStatus.ELIGIBLE:
        return _("The eligibility of %(number)s is not complete and met; only that can be signed.") % {
            "number": screening.screening_number
        }
    return None


def _end_of_study_refusal(participant: Participant) -> str | None:
    if participant.status == ParticipantStatus.ON_STUDY:
        return _("%(id)s is still on study; an end of study is signed once it is recorded.") % {
            "id": participant.study_id
        }
    return None


@dataclass(frozen=True)
class SubjectKind:
    kind: str
    model: type[models.Model]
    records: Callable[[Any], dict[str, Any]]
    refusal: Callable[[Any], str | None]
    site_path: str
    # (tracked model, lookup in its event table, path from a Signature row to the value it matches)
    event_sources: tuple[tuple[type[models.Model], str, str], ...]
    related: tuple[str, ...]

    @property
    def field(self) -> str:
        return SUBJECT_FIELDS[self.kind]

    def site(self, subject: models.Model) -> Site:
        obj = subject
        for step in self.site_path.split("."):
            obj = getattr(obj, step)
        return obj

    def locked(self, subject: models.Model) -> models.Model:
        """The subject's row, locked for this transaction (signing and voiding one at a time)."""
        return (
            self.model.objects.select_for_update(of=("self",))
            .select_related(*self.related)
            .get(pk=subject.pk)
        )


SUBJECTS: dict[str, SubjectKind] = {
    SignatureKind.VISIT: SubjectKind(
        kind=SignatureKind.VISIT,
        model=Visit,
        records=visit_records,
        refusal=_visit_refusal,
        site_path="participant.site",
        event_sources=tuple((model, lookup, "visit_id") for model, lookup in record_event_sources()),
        related=("participant__site",),
    ),
    SignatureKind.ELIGIBILITY: SubjectKind(
        kind=SignatureKind.ELIGIBILITY,
        model=Screening,
        records=eligibility_records,
        refusal=_eligibility_refusal,
        site_path="site",
        event_sources=(
            (Screening, "pgh_obj_id", "screening_id"),
            (EligibilityAssessment, "screening_id", "screening_id"),
        ),
        related=("site", "eligibility"),
    ),
    SignatureKind.END_OF_STUDY: SubjectKind(
        kind=SignatureKind.END_OF_STUDY,
        model=Participant,
        records=end_of_study_records,
        refusal=_end_of_study_refusal,
        site_path="site",
        event_sources=(
            (Participant, "pgh_obj_id", "participant_id"),
            (ConsentWithdrawal, "screening_id", "participant__screening_id"),
        ),
        related=("site",),
    ),
}


def subject_kind(subject: models.Model) -> SubjectKind:
    return SUBJECTS[SUBJECT_KINDS[type(subject)]]
