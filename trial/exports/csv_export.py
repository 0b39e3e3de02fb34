"""CSV exports: data dictionary, long format (one row per value), wide format (one row per
record) and the audit trail. Each writer streams rows to a text file, reading the database in
batches, so memory stays flat however large the study grows."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from typing import TextIO

from django.db import models

from trial.exports.audit_trail import audit_entries
from trial.exports.deidentify import Deidentifier
from trial.exports.dictionary import DICTIONARY_HEADER, FORMS, FormSpec, dictionary_rows
from trial.exports.records import UserNames, form_records, format_timestamp, format_value

# OWASP CSV injection: a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")

Progress = Callable[[int], None]

LONG_HEADER = (
    "study_id",
    "site",
    "visit",
    "form",
    "record_id",
    "field",
    "value",
    "unit",
    "entered_at_utc",
    "entered_by",
)
AUDIT_HEADER = (
    "when_utc",
    "who",
    "action",
    "study_id",
    "form",
    "record_id",
    "field",
    "old_value",
    "new_value",
    "reason",
)


def safe_cell(value) -> str:
    """A cell a spreadsheet shows as text: formulas get a leading apostrophe; numbers (-1.5)
    stay numbers."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text


class SafeWriter:
    def __init__(self, out: TextIO):
        self._writer = csv.writer(out, lineterminator="\r\n")
        self.rows = 0

    def header(self, cells: Iterable) -> None:
        self._writer.writerow([safe_cell(c) for c in cells])

    def row(self, cells: Iterable) -> None:
        self._writer.writerow([safe_cell(c) for c in cells])
        self.rows += 1


def write_dictionary(out: TextIO, **_kwargs) -> int:
    writer = SafeWriter(out)
    writer.header(DICTIONARY_HEADER)
    for row in dictionary_rows():
        writer.row(row)
    return writer.rows


def write_long(
    out: TextIO,
    *,
    participants: models.QuerySet,
    progress: Progress = lambda done: None,
    deidentifier: Deidentifier | None = None,
    **_kwargs,
) -> int:
    """One row per non-empty value. With a `deidentifier`, identifiers are left out, dates are
    study days and the study id is a pseudonym (HIPAA Safe Harbor)."""
    writer = SafeWriter(out)
    writer.header(LONG_HEADER)
    names = UserNames()
    done = 0
    for spec in FORMS:
        fields = [f for f in spec.fields if deidentifier is None or deidentifier.keeps(f)]
        for record in form_records(spec, participants):
            for f in fields:
                value = record.raw(f)
                if value in (None, "", []):
                    continue
                entered = record.entered.get(f.name)
                if deidentifier is None:
                    cells = (
                        record.study_id,
                        record.site_code,
                        record.visit_code,
                        spec.code,
                        record.obj.pk,
                        f.name,
                        format_value(f, value),
                        f.unit,
                        format_timestamp(entered.at if entered else None),
                        names(entered.user_id if entered else None),
                    )
                else:
                    cells = (
                        deidentifier.subject_key(record.participant),
                        record.site_code,
                        record.visit_code,
                        spec.code,
                        record.obj.pk,
                        f.name,
                        deidentifier.value(record, f, value),
                        "study day" if f.is_date and f.data_type != "partialDate" else f.unit,
                        deidentifier.study_day(record.participant, entered.at) if entered else "",
                        "",
                    )
                writer.row(cells)
            if deidentifier is not None:
                for name, value in deidentifier.derived(record):
                    writer.row(
                        (
                            deidentifier.subject_key(record.participant),
                            record.site_code,
                            record.visit_code,
                            spec.code,
                            record.obj.pk,
                            name,
                            value,
                            "years",
                            "",
                            "",
                        )
                    )
            done += 1
            progress(done)
    return writer.rows


def write_wide(
    out: TextIO, *, participants: models.QuerySet, form: FormSpec, progress: Progress, **_kw
) -> int:
    """One row per record of one form; a column per field, headed by the field name."""
    writer = SafeWriter(out)
    writer.header(("study_id", "site", "visit", "record_id", *(f.name for f in form.fields)))
    for record in form_records(form, participants):
        writer.row(
            (
                record.study_id,
                record.site_code,
                record.visit_code,
                record.obj.pk,
                *(format_value(f, record.raw(f)) for f in form.fields),
            )
        )
        progress(writer.rows)
    return writer.rows


def write_audit_trail(out: TextIO, *, participants: models.QuerySet, user, progress: Progress, **_kw) -> int:
    """One row per changed value: when (UTC), who, action, old -> new value, reason (see
    `audit_trail.audit_entries`; identifying values the user may not read show as "hidden")."""
    writer = SafeWriter(out)
    writer.header(AUDIT_HEADER)
    for entry in audit_entries(participants, user=user, progress=progress):
        for change in entry.changes:
            writer.row(
                (
                    format_timestamp(entry.at),
                    entry.who,
                    entry.action,
                    entry.study_id,
                    entry.spec.code,
                    entry.record_id,
                    change.field.name,
                    change.old,
                    change.new,
                    entry.reason,
                )
            )
    return writer.rows
