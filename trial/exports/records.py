"""Reading the exported forms in constant memory: records in batches, each with its context
(study id, site, visit) and, per field, when and by whom the current value was entered (from the
audit events of the batch).

Records are read as plain rows (`values_list`), not model instances: building a model per row
cost more than everything else an export does (issue #9: ~880,000 records at 10,000
participants). The same database converters run, so a value is what `getattr(instance, attname)`
would give."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import models
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform

from participants.models import Participant
from trial.audit import DELETE, event_model_for
from trial.exports.dictionary import DataType, ExportField, FormSpec

BATCH_SIZE = 500
# Records per provenance query; the rows come from one server-side cursor per form.
RECORDS_PER_BATCH = 2000
PARTICIPANTS_PER_BATCH = 50
EMPTY = (None, "", [])  # values an export leaves out: `value in EMPTY`


@dataclass(slots=True)
class Provenance:
    at: dt.datetime | None = None
    user_id: int | None = None
    reason: str = ""
    _stamp: str | None = field(default=None, repr=False, compare=False)

    @property
    def stamp(self) -> str:
        """`at` as the CSV exports write it (`format_timestamp`), formatted once per event."""
        if self._stamp is None:
            self._stamp = format_timestamp(self.at)
        return self._stamp


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """The participant a record belongs to: what the exports need of it."""

    pk: int
    study_id: str


@dataclass(frozen=True, slots=True)
class VisitRef:
    pk: int
    sequence: int
    definition_code: str
    code: str


@dataclass(slots=True)
class Record:
    spec: FormSpec
    pk: int
    values: tuple  # one per field of `spec.fields`, as stored
    participant: SubjectRef
    site_code: str
    visit: VisitRef | None
    entered: dict[str, Provenance]

    @property
    def study_id(self) -> str:
        return self.participant.study_id

    @property
    def visit_code(self) -> str:
        return self.visit.code if self.visit else ""

    def raw(self, f: ExportField):
        return self.values[self.spec.field_index[f.name]]


def _path(prefix: str, rest: str) -> str:
    return f"{prefix}__{rest}" if prefix else rest


def form_queryset(spec: FormSpec, participants: models.QuerySet) -> models.QuerySet:
    """The form's records of `participants` (already limited to what the user may see)."""
    qs = spec.model._default_manager.all()
    pid = _path(spec.participant_path, "pk") if spec.participant_path else "pk"
    qs = qs.filter(**{f"{pid}__in": participants.values("pk")})
    return qs.order_by("pk")


def _columns(spec: FormSpec) -> list[str]:
    """What `form_records` selects: the record's id, its participant (id, study id, site code),
    its visit (id, order, type, code) when the form has one, then the exported fields."""
    participant = spec.participant_path
    columns = [
        "pk",
        _path(participant, "pk"),
        _path(participant, "study_id"),
        _path(participant, "site__code"),
    ]
    if spec.visit_path is not None:
        columns += [_path(spec.visit_path, name) for name in ("pk", "sequence", "definition_code", "code")]
    return columns + [f.attname for f in spec.fields]


def in_batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def participant_batches(
    participants: models.QuerySet, size: int = PARTICIPANTS_PER_BATCH
) -> Iterator[list[Participant]]:
    """The participants (with their site) in study id order, `size` at a time."""
    ordered = participants.select_related("site").order_by("study_id")
    return in_batches(ordered.iterator(chunk_size=size), size)


def _event_rows(spec: FormSpec) -> tuple[models.QuerySet, list[str]]:
    """The form's audit events (deletions aside) as rows: record id, time, user, reason, then the
    tracked fields; and the names of those fields."""
    event_model = event_model_for(spec.model)
    event_columns = {f.attname for f in event_model._meta.concrete_fields}
    tracked = [f for f in spec.fields if f.attname in event_columns]
    rows = (
        event_model.objects.exclude(pgh_label=DELETE)
        # Only the two keys of the context that are exported, not the whole JSON per event.
        .annotate(
            export_user=KeyTextTransform("user", "pgh_context"),
            export_reason=KeyTextTransform("reason", "pgh_context"),
        )
        .values_list(
            "pgh_obj_id", "pgh_created_at", "export_user", "export_reason", *(f.attname for f in tracked)
        )
    )
    return rows, [f.name for f in tracked]


def provenance_for(spec: FormSpec, ids: list[int]) -> dict[int, dict[str, Provenance]]:
    """Per record and field: the audit event that gave the field its current value (one query)."""
    events, names = _event_rows(spec)
    # The ids as one array parameter: `pgh_obj_id__in=ids` prepares every id in Python.
    events = events.filter(pgh_obj_id__in=RawSQL("SELECT unnest(%s::bigint[])", (ids,))).order_by("pgh_id")
    result: dict[int, dict[str, Provenance]] = {}
    previous: dict[int, list] = {}
    for obj_id, at, user, reason, *values in events:
        here = Provenance(at, _user_id(user), reason or "")
        before = previous.get(obj_id)
        if before is None:  # the record's first event (most records have no other) gave every field
            result[obj_id] = dict.fromkeys(names, here)
        else:
            per_field = result[obj_id]
            for name, old, new in zip(names, before, values, strict=True):
                if old != new:
                    per_field[name] = here
        previous[obj_id] = values
    return result


def provenance_stream(spec: FormSpec, participants: models.QuerySet) -> Iterator[tuple[int, dict]]:
    """(record id, what `provenance_for` gives for it) for every record of the form with audit
    events, in record id order: one query, read from a server-side cursor (a query per batch of
    records cost ~10 s of index lookups for the 440,000 scores of 10,000 participants)."""
    events, names = _event_rows(spec)
    scope = form_queryset(spec, participants).order_by().values("pk")
    events = events.filter(pgh_obj_id__in=scope).order_by("pgh_obj_id", "pgh_id")
    current, per_field, before = None, {}, None
    for obj_id, at, user, reason, *values in events.iterator(chunk_size=RECORDS_PER_BATCH):
        here = Provenance(at, _user_id(user), reason or "")
        if obj_id != current:
            if current is not None:
                yield current, per_field
            current, per_field = obj_id, dict.fromkeys(names, here)
        else:
            for name, old, new in zip(names, before, values, strict=True):
                if old != new:
                    per_field[name] = here
        before = values
    if current is not None:
        yield current, per_field


def _user_id(text: str | None) -> int | str | None:
    """The audit context's user (a user id, read as JSON text)."""
    return int(text) if text is not None and text.isdigit() else text


def form_records(
    spec: FormSpec, participants: models.QuerySet, *, by_participant: bool = False, provenance: bool = True
) -> Iterator[Record]:
    """Every record of the form, with provenance (unless not wanted: no audit events are read), in
    id order (or by study id, then id), reading RECORDS_PER_BATCH rows at a time from one
    server-side cursor."""
    columns = _columns(spec)
    rows = form_queryset(spec, participants)
    if by_participant:
        rows = rows.order_by(_path(spec.participant_path, "study_id"), "pk")
    rows = rows.values_list(*columns).iterator(chunk_size=RECORDS_PER_BATCH)
    first = 8 if spec.visit_path is not None else 4
    subjects: dict[int, SubjectRef] = {}
    visits: dict[int, VisitRef] = {}
    # In id order, the provenance comes from one stream read alongside (ids compare as numbers);
    # in study id order, one query per batch of records.
    stream = provenance_stream(spec, participants) if provenance and not by_participant else None
    head = next(stream, None) if stream is not None else None
    for batch in in_batches(rows, RECORDS_PER_BATCH):
        entered = provenance_for(spec, [row[0] for row in batch]) if provenance and by_participant else {}
        for row in batch:
            pk, participant_id, study_id, site_code = row[:4]
            if stream is not None:
                while head is not None and head[0] < pk:  # a record added since the rows were read
                    head = next(stream, None)
                if head is not None and head[0] == pk:
                    entered = {pk: head[1]}
            subject = subjects.get(participant_id)
            if subject is None:
                if len(subjects) > RECORDS_PER_BATCH:
                    subjects.clear()
                subject = subjects[participant_id] = SubjectRef(participant_id, study_id)
            visit = None
            if first == 8 and row[4] is not None:
                visit = visits.get(row[4])
                if visit is None:
                    if len(visits) > RECORDS_PER_BATCH:
                        visits.clear()
                    visit = visits[row[4]] = VisitRef(*row[4:8])
            yield Record(spec, pk, row[first:], subject, site_code, visit, entered.get(pk, {}))


class UserNames:
    """Audit names of users, looked up once each."""

    def __init__(self):
        self._names: dict[int, str] = {}
        self._model = apps.get_model(settings.AUTH_USER_MODEL)

    def __call__(self, user_id: int | None) -> str:
        if user_id is None:
            return ""
        if user_id not in self._names:
            user = self._model._base_manager.filter(pk=user_id).first()
            self._names[user_id] = user.audit_name if user else str(user_id)
        return self._names[user_id]


def format_value(f: ExportField, value) -> str:
    """The stored value as exported: choice codes (not labels), ISO dates, UTC date-times."""
    if value is None:
        return ""
    kind = type(value)  # the common types first, exactly (subclasses take the general path)
    if kind is str or kind is int:
        return ("true" if value else "false") if f.data_type == DataType.BOOLEAN else str(value)
    if kind is decimal.Decimal:
        return format(value, "f")
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if f.data_type == DataType.BOOLEAN:
        return "true" if value else "false"
    return str(value)


def format_timestamp(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else ""
