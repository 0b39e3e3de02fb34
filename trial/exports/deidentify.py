"""HIPAA Safe Harbor de-identification (45 CFR 164.514(b)(2)) of the long-format export.

- names, contact details, signatures and record numbers are left out (each model's
  IDENTIFYING_FIELDS and e-mail/phone/signature fields); the identifying screening form is not
  exported at all;
- the study id is replaced by a pseudonym that is not derived from an identifier a reader could
  reverse (a keyed hash);
- full dates become study days from the participant's baseline (W0 visit date, else enrolment
  date; baseline = day 0); partial dates keep their year only;
- ages over 89 are "90+";
- free text is left out unless the person exporting chooses to include it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from django.conf import settings
from django.db import models

from participants.models import Participant, Visit
from trial.exports.dictionary import DataType, ExportField
from trial.exports.records import Record, format_value

# Safe Harbor: ages over 89 are aggregated into one category.
AGE_CAP = 90


def age_band(age: int | None) -> str:
    if age is None:
        return ""
    return f"{AGE_CAP}+" if age >= AGE_CAP else str(age)


def _age_on(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


class Deidentifier:
    def __init__(self, participants: models.QuerySet, *, include_free_text: bool = False):
        self.include_free_text = include_free_text
        w0 = dict(
            Visit.objects.filter(
                participant__in=participants.values("pk"), code="W0", visit_date__isnull=False
            ).values_list("participant_id", "visit_date")
        )
        self._baseline: dict[int, dt.date] = {}
        self._born: dict[int, dt.date | None] = {}
        for pk, enrolled_on, born in participants.values_list(
            "pk", "enrolled_on", "screening__date_of_birth"
        ):
            self._baseline[pk] = w0.get(pk, enrolled_on)
            self._born[pk] = born
        self._key = hashlib.sha256(("export-pseudonym:" + settings.SECRET_KEY).encode()).digest()

    def keeps(self, f: ExportField) -> bool:
        if f.is_identifying:
            return False
        if f.is_free_text and not self.include_free_text:
            return False
        if f.form.model is Participant and f.name == "study_id":
            return False  # replaced by the pseudonym in the subject column
        if f.name == "time_zone":
            return False  # zones are named after cities: a geographic unit smaller than a state
        return True

    def subject_key(self, participant: Participant) -> str:
        digest = hmac.new(self._key, participant.study_id.encode(), hashlib.sha256).hexdigest()
        return "S-" + digest[:12].upper()

    def study_day(self, participant: Participant, when: dt.date | dt.datetime | None) -> str:
        if when is None:
            return ""
        if isinstance(when, dt.datetime):
            when = when.astimezone(dt.UTC).date()
        return str((when - self._baseline[participant.pk]).days)

    def value(self, record: Record, f: ExportField, value) -> str:
        if f.data_type == DataType.PARTIAL_DATE:
            return str(value)[:4]  # the year only
        if f.data_type in (DataType.DATE, DataType.DATETIME):
            return self.study_day(record.participant, value)
        return format_value(f, value)

    def derived(self, record: Record) -> list[tuple[str, str]]:
        """Values computed for the de-identified export: the age at baseline (90+ above 89)."""
        if record.spec.model is not Participant:
            return []
        born = self._born.get(record.participant.pk)
        if born is None:
            return []
        return [("age_at_baseline", age_band(_age_on(born, self._baseline[record.participant.pk])))]
