"""CSV exports: data dictionary, long format (one row per value), wide format (one row per
record) and the audit trail. Each writer streams rows to a text file, reading the database in
batches, so memory stays flat however large the study grows."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import re
from collections.abc import Callable, Iterable, Iterator
from typing import TextIO

from django.db import models

from trial.exports.audit_trail import audit_entries
from trial.exports.deidentify import Deidentifier
from trial.exports.dictionary import DICTIONARY_HEADER, FORMS, ExportField, FormSpec, dictionary_rows
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
        self._out = out
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

    def lines(self, lines: list[str]) -> None:
        """Rows already written as CSV lines (`csv_field`, "\\r\\n" ends)."""
        self._out.write("".join(lines))
        self.rows += len(lines)


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
        # Lines come a record at a time and go to the file a thousand or so at a time.
        chunk: list[str] = []
        for lines in _long_lines(participants, progress):
            chunk += lines
            if len(chunk) >= 1000:
                writer.lines(chunk)
                chunk = []
        writer.lines(chunk)
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


# The characters for which csv.writer (minimal quoting, "\r\n" line ends) quotes a cell.
_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def csv_field(text: str) -> str:
    """`text` as `csv.writer` writes it as one of several cells of a row (quoted, with its quotes
    doubled, when it holds a comma, a quote or a line break), for lines written without it."""
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


# Values of these exact types that are equal are exported alike (not so Decimal("1.0") and
# Decimal("1.00")), so a field's repeated values (choice codes, small numbers, dates) are
# formatted once; at most _MEMO_SIZE of them per field, so memory stays flat.
_MEMO_TYPES = frozenset((str, int, bool, dt.date))
_MEMO_SIZE = 10_000


def _value_field(f: ExportField) -> Callable[[object], str]:
    """The field's stored value as its CSV text: `format_value`, then `safe_cell`, then the CSV
    quoting - with shortcuts where these cannot change the text."""
    memo: dict = {}

    def field(value) -> str:
        kind = type(value)
        if kind is decimal.Decimal:  # digits (a "-NaN" still goes through safe_cell)
            text = format(value, "f")
            return safe_cell(text) if text.startswith(_FORMULA_START) else text
        if kind is dt.datetime:  # ISO 8601 in UTC: starts with the year's digits, needs no quotes
            return format_value(f, value)
        if kind in _MEMO_TYPES:
            known = memo.get(value)
            if known is not None and known[0] is kind:  # True == 1, but they are exported apart
                return known[1]
            text = csv_field(safe_cell(format_value(f, value)))
            if len(memo) < _MEMO_SIZE:
                memo[value] = (kind, text)
            return text
        return csv_field(safe_cell(format_value(f, value)))

    return field


def _long_lines(participants: models.QuerySet, progress: Progress) -> Iterator[list[str]]:
    """The long format's rows as CSV lines, record by record, written as `SafeWriter.row` writes
    them (tests/exports/test_pinned_output.py compares the files byte for byte).

    Per row only the value is formatted: the cells before it are the record's (joined once per
    record), the field's (once per export) or the audit event's (once per event)."""
    names = _SafeNames()
    contexts: dict[tuple[str, str, str], str] = {}
    done = 0
    for spec in FORMS:
        code = csv_field(safe_cell(spec.code))
        # Per field: its position, name, the cells around its value and its value's formatter.
        plan = [
            (
                i,
                f.name,
                csv_field(safe_cell(f.name)) + ",",
                "," + csv_field(safe_cell(f.unit)) + ",",
                _value_field(f),
            )
            for i, f in enumerate(spec.fields)
        ]
        for record in form_records(spec, participants):
            visit = record.visit
            key = (record.participant.study_id, record.site_code, visit.code if visit else "")
            context = contexts.get(key)
            if context is None:
                if len(contexts) > _MEMO_SIZE:
                    contexts.clear()
                context = contexts[key] = ",".join(csv_field(safe_cell(c)) if c else "" for c in key)
            lead = f"{context},{code},{record.pk},"
            entered = record.entered
            values = record.values
            lines = []
            # Most records' fields share one audit event: its cells are joined once.
            last_at, last_tail = None, ",\r\n"
            for i, field_name, name, unit, value_field in plan:
                value = values[i]
                # Only falsy values can be empty; `in` asks Decimal("1.5") == "" the slow way.
                if not value and value in EMPTY:
                    continue
                at = entered.get(field_name)
                if at is not last_at:
                    last_at = at
                    if at is None:
                        last_tail = ",\r\n"
                    else:
                        last_tail = f"{csv_field(at.stamp)},{csv_field(names(at.user_id))}\r\n"
                lines.append(f"{lead}{name}{value_field(value)}{unit}{last_tail}")
            yield lines
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
