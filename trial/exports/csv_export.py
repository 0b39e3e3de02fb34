"""CSV exports: data dictionary, long format (one row per value), wide format (one row per
record) and the audit trail. Each writer streams rows to a text file, reading the database in
batches, so memory stays flat however large the study grows."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from django.db import models

from trial.exports.audit_trail import audit_entries
from trial.exports.deidentify import Deidentifier
from trial.exports.dictionary import DICTIONARY_HEADER, FORMS, FormSpec, dictionary_rows
from trial.exports.records import EMPTY, UserNames, form_records, format_timestamp, format_value

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

    def safe_rows(self, rows: list[tuple[str, ...]]) -> None:
        """Rows whose cells have been through `safe_cell` already."""
        self._writer.writerows(rows)
        self.rows += len(rows)


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
    if deidentifier is None:
        # Rows come a record at a time and go to the csv writer a thousand or so at a time.
        chunk: list[tuple[str, ...]] = []
        for rows in _long_rows(participants, progress):
            chunk += rows
            if len(chunk) >= 1000:
                writer.safe_rows(chunk)
                chunk = []
        writer.safe_rows(chunk)
    else:
        for chunk in _chunks(_deidentified_rows(participants, progress, deidentifier), 1000):
            writer.safe_rows(chunk)
    return writer.rows


def _chunks(rows: Iterator[tuple], size: int) -> Iterator[list[tuple]]:
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _long_rows(participants: models.QuerySet, progress: Progress) -> Iterator[list[tuple[str, ...]]]:
    """The long format's rows, record by record, every cell already passed through `safe_cell`.

    Per row only the value is formatted and checked: the other cells are the record's (once per
    record), the field's (once per export) or the audit event's (once per event and user)."""
    names = _SafeNames()
    done = 0
    for spec in FORMS:
        code = safe_cell(spec.code)
        plan = [(i, f, f.name, safe_cell(f.name), safe_cell(f.unit)) for i, f in enumerate(spec.fields)]
        for record in form_records(spec, participants):
            visit = record.visit
            lead = (
                safe_cell(record.participant.study_id),
                safe_cell(record.site_code),
                safe_cell(visit.code) if visit else "",
                code,
                str(record.pk),
            )
            entered = record.entered
            values = record.values
            rows = []
            for i, f, field_name, name, unit in plan:
                value = values[i]
                if value in EMPTY:
                    continue
                at = entered.get(field_name)
                if at is None:
                    rows.append(lead + (name, safe_cell(format_value(f, value)), unit, "", ""))
                else:
                    rows.append(
                        lead + (name, safe_cell(format_value(f, value)), unit, at.stamp, names(at.user_id))
                    )
            yield rows
            done += 1
            progress(done)


def _deidentified_rows(
    participants: models.QuerySet, progress: Progress, deidentifier: Deidentifier
) -> Iterator[tuple]:
    done = 0
    for spec in FORMS:
        fields = [f for f in spec.fields if deidentifier.keeps(f)]
        for record in form_records(spec, participants):
            subject = deidentifier.subject_key(record.participant)
            for f in fields:
                value = record.raw(f)
                if value in EMPTY:
                    continue
                entered = record.entered.get(f.name)
                yield _safe(
                    (
                        subject,
                        record.site_code,
                        record.visit_code,
                        spec.code,
                        record.pk,
                        f.name,
                        deidentifier.value(record, f, value),
                        "study day" if f.is_date and f.data_type != "partialDate" else f.unit,
                        deidentifier.study_day(record.participant, entered.at) if entered else "",
                        "",
                    )
                )
            for name, value in deidentifier.derived(record):
                yield _safe(
                    (
                        subject,
                        record.site_code,
                        record.visit_code,
                        spec.code,
                        record.pk,
                        name,
                        value,
                        "years",
                        "",
                        "",
                    )
                )
            done += 1
            progress(done)


def _safe(cells: Iterable) -> tuple[str, ...]:
    return tuple(safe_cell(c) for c in cells)


class _SafeNames(UserNames):
    """Audit names as safe cells (a name could start with "=")."""

    def __call__(self, user_id: int | None) -> str:
        if user_id is None:
            return ""
        if user_id not in self._names:
            self._names[user_id] = safe_cell(super().__call__(user_id))
        return self._names[user_id]


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
                record.pk,
                *(format_value(f, value) for f, value in zip(form.fields, record.values, strict=True)),
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
