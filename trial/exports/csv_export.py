"""CSV exports: data dictionary, long format (one row per value), wide format (one row per
record) and the audit trail. Each writer streams rows to a text file, reading the database in
batches, so memory stays flat however large the study grows."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable
from typing import TextIO

from django.db import models

from trial.audit import DELETE, INSERT, event_model_for, hidden_fields_for
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


def _count(forms: Iterable[FormSpec], participants: models.QuerySet) -> int:
    from trial.exports.records import form_queryset

    return sum(form_queryset(spec, participants).count() for spec in forms)


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
            if done % 200 == 0:
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
        if writer.rows % 200 == 0:
            progress(writer.rows)
    return writer.rows


def write_audit_trail(out: TextIO, *, participants: models.QuerySet, user, progress: Progress, **_kw) -> int:
    """Every create, change and delete of the exported forms' records, oldest first per record:
    when (UTC), who, old -> new value, reason. Identifying values the user may not read show as
    "hidden"."""
    from trial.exports.records import BATCH_SIZE, _batches, _follow, form_queryset

    writer = SafeWriter(out)
    writer.header(AUDIT_HEADER)
    names = UserNames()
    records_done = 0  # progress counts records, as the job's total does
    for spec in FORMS:
        event_model = event_model_for(spec.model)
        columns = {f.attname for f in event_model._meta.concrete_fields}
        fields = [f for f in spec.fields if f.attname in columns]
        hidden = hidden_fields_for(spec.model, user)
        rows = form_queryset(spec, participants).iterator(chunk_size=BATCH_SIZE)
        for batch in _batches(rows, BATCH_SIZE):
            study_ids = {obj.pk: _follow(obj, spec.participant_path).study_id for obj in batch}
            events = event_model.objects.filter(pgh_obj_id__in=list(study_ids)).order_by(
                "pgh_obj_id", "pgh_id"
            )
            previous = None
            for event in events.iterator(chunk_size=BATCH_SIZE * 4):
                if previous is not None and previous.pgh_obj_id != event.pgh_obj_id:
                    previous = None
                ctx = event.pgh_context or {}
                who = names(ctx.get("user")) or str(ctx.get("actor") or "")
                for f in fields:
                    new = getattr(event, f.attname)
                    old = getattr(previous, f.attname) if previous is not None else None
                    if event.pgh_label == INSERT and new in (None, "", []):
                        continue
                    if event.pgh_label not in (INSERT, DELETE) and old == new:
                        continue

                    def show(value, f=f, hidden=hidden):
                        if f.name in hidden and value not in (None, ""):
                            return "hidden"
                        return format_value(f, value)

                    writer.row(
                        (
                            format_timestamp(event.pgh_created_at),
                            who,
                            event.pgh_label,
                            study_ids[event.pgh_obj_id],
                            spec.code,
                            event.pgh_obj_id,
                            f.name,
                            ""
                            if event.pgh_label == INSERT
                            else show(old if event.pgh_label != DELETE else new),
                            "" if event.pgh_label == DELETE else show(new),
                            ctx.get("reason") or "",
                        )
                    )
                previous = event
            records_done += len(batch)
            progress(records_done)
    return writer.rows
