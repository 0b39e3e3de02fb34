"""Reading the exported forms in constant memory: records in batches, each with its context
(study id, site, visit) and, per field, when and by whom the current value was entered (from the
audit events of the batch)."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.apps import apps
from django.conf import settings
from django.db import models

from participants.models import Participant, Visit
from trial.audit import DELETE, event_model_for
from trial.exports.dictionary import DataType, ExportField, FormSpec

BATCH_SIZE = 500
PARTICIPANTS_PER_BATCH = 50


@dataclass
class Provenance:
    at: dt.datetime | None = None
    user_id: int | None = None
    reason: str = ""


@dataclass
class Record:
    spec: FormSpec
    obj: models.Model
    participant: Participant
    visit: Visit | None
    entered: dict[str, Provenance] = field(default_factory=dict)

    @property
    def study_id(self) -> str:
        return self.participant.study_id

    @property
    def site_code(self) -> str:
        return self.participant.site.code

    @property
    def visit_code(self) -> str:
        return self.visit.code if self.visit else ""

    def raw(self, f: ExportField):
        return getattr(self.obj, f.attname)


def _path(prefix: str, rest: str) -> str:
    return f"{prefix}__{rest}" if prefix else rest


def form_queryset(spec: FormSpec, participants: models.QuerySet) -> models.QuerySet:
    """The form's records of `participants` (already limited to what the user may see)."""
    qs = spec.model._default_manager.all()
    pid = _path(spec.participant_path, "pk") if spec.participant_path else "pk"
    qs = qs.filter(**{f"{pid}__in": participants.values("pk")})
    related = []
    if spec.participant_path:
        related.append(_path(spec.participant_path, "site"))
    else:
        related.append("site")
    if spec.visit_path:
        related.append(spec.visit_path)
    return qs.select_related(*related).order_by("pk")


def _batches(items: Iterable, size: int) -> Iterator[list]:
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
    return _batches(ordered.iterator(chunk_size=size), size)


def _follow(obj: models.Model, path: str | None):
    if path is None:
        return None
    if path == "":
        return obj
    for part in path.split("__"):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return obj


def provenance_for(spec: FormSpec, ids: list[int]) -> dict[int, dict[str, Provenance]]:
    """Per record and field: the audit event that gave the field its current value (one query)."""
    event_model = event_model_for(spec.model)
    event_columns = {f.attname for f in event_model._meta.concrete_fields}
    tracked = [f for f in spec.fields if f.attname in event_columns]
    result: dict[int, dict[str, Provenance]] = {}
    previous: dict[int, models.Model] = {}
    events = event_model.objects.filter(pgh_obj_id__in=ids).exclude(pgh_label=DELETE).order_by("pgh_id")
    for event in events.iterator(chunk_size=BATCH_SIZE * 4):
        ctx = event.pgh_context or {}
        here = Provenance(event.pgh_created_at, ctx.get("user"), ctx.get("reason") or "")
        before = previous.get(event.pgh_obj_id)
        per_field = result.setdefault(event.pgh_obj_id, {})
        for f in tracked:
            if before is None or getattr(before, f.attname) != getattr(event, f.attname):
                per_field[f.name] = here
        previous[event.pgh_obj_id] = event
    return result


def form_records(spec: FormSpec, participants: models.QuerySet) -> Iterator[Record]:
    """Every record of the form, with provenance, reading BATCH_SIZE rows at a time."""
    rows = form_queryset(spec, participants).iterator(chunk_size=BATCH_SIZE)
    for batch in _batches(rows, BATCH_SIZE):
        provenance = provenance_for(spec, [obj.pk for obj in batch])
        for obj in batch:
            yield Record(
                spec=spec,
                obj=obj,
                participant=_follow(obj, spec.participant_path),
                visit=_follow(obj, spec.visit_path),
                entered=provenance.get(obj.pk, {}),
            )


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
