"""The audit trail of the exported forms, read participant batch by participant batch: per record,
every create, change and delete with when, who, old -> new value and the reason. The CSV and the
PDF export both read `audit_entries`.

Events are found through the participant columns the event tables copy from their records, so a
record deleted since still has its history listed (its delete event included)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.db import models
from django.db.models import F, Value

from participants.models import Participant
from trial.audit import DELETE, INSERT, event_model_for, hidden_fields_for
from trial.exports.dictionary import FORMS, ExportField, FormSpec
from trial.exports.records import BATCH_SIZE, UserNames, format_value, participant_batches

HIDDEN = "hidden"

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Change:
    field: ExportField
    old: str  # as exported (codes, ISO dates); "hidden" for identifying values the user may not read
    new: str


@dataclass(frozen=True)
class AuditEntry:
    at: dt.datetime
    who: str
    action: str  # pghistory's label: insert, update, delete
    participant: Participant
    spec: FormSpec
    record_id: int
    visit_code: str
    changes: tuple[Change, ...]
    reason: str

    @property
    def study_id(self) -> str:
        return self.participant.study_id


def _events(spec: FormSpec, participant_ids) -> models.QuerySet:
    """The form's audit events of these participants (ids or a subquery), per record oldest
    first."""
    event_model = event_model_for(spec.model)
    owner = f"{spec.participant_path}_id" if spec.participant_path else "pgh_obj_id"
    if spec.visit_path is None:
        visit_code = Value("")
    elif spec.visit_path == "":
        visit_code = F("code")  # the Visit form: the event row is the visit
    else:
        visit_code = F(f"{spec.visit_path}__code")
    return (
        event_model.objects.filter(**{f"{owner}__in": participant_ids})
        .annotate(export_participant_id=F(owner), export_visit_code=visit_code)
        .order_by("pgh_obj_id", "pgh_id")
    )


def _changes(fields: list[ExportField], event, previous, hidden: frozenset[str]) -> tuple[Change, ...]:
    def show(f: ExportField, value) -> str:
        if f.name in hidden and value not in (None, "", []):
            return HIDDEN
        return format_value(f, value)

    changes = []
    for f in fields:
        new = getattr(event, f.attname)
        if event.pgh_label == INSERT:
            if new not in (None, "", []):
                changes.append(Change(f, "", show(f, new)))
        elif event.pgh_label == DELETE:  # the event row holds the values the record had
            if new not in (None, "", []):
                changes.append(Change(f, show(f, new), ""))
        else:
            old = getattr(previous, f.attname) if previous is not None else None
            if old != new:
                changes.append(Change(f, show(f, old), show(f, new)))
    return tuple(changes)


def _form_entries(
    spec: FormSpec, participants: dict[int, Participant], user, names: UserNames
) -> Iterator[AuditEntry]:
    event_model = event_model_for(spec.model)
    columns = {f.attname for f in event_model._meta.concrete_fields}
    fields = [f for f in spec.fields if f.attname in columns]
    hidden = hidden_fields_for(spec.model, user)
    previous = None
    for event in _events(spec, list(participants)).iterator(chunk_size=BATCH_SIZE * 4):
        if previous is not None and previous.pgh_obj_id != event.pgh_obj_id:
            previous = None
        ctx = event.pgh_context or {}
        yield AuditEntry(
            at=event.pgh_created_at,
            who=names(ctx.get("user")) or str(ctx.get("actor") or ""),
            action=event.pgh_label,
            participant=participants[event.export_participant_id],
            spec=spec,
            record_id=event.pgh_obj_id,
            visit_code=event.export_visit_code or "",
            changes=_changes(fields, event, previous, hidden),
            reason=ctx.get("reason") or "",
        )
        previous = event


def count_entries(participants: models.QuerySet) -> int:
    """How many entries `audit_entries` yields (one query per form)."""
    ids = participants.values("pk")
    return sum(_events(spec, ids).order_by().count() for spec in FORMS)


def audit_entries(
    participants: models.QuerySet, *, user, progress: Progress = lambda done: None
) -> Iterator[AuditEntry]:
    """Every audit event of the participants' exported records, participant by participant (in
    study id order), then form by form, record by record, oldest first. Identifying values `user`
    may not read show as "hidden". Memory holds one batch of participants' events at a time;
    `progress` is told how many participants are done."""
    names = UserNames()
    done = 0
    for batch in participant_batches(participants):
        by_id = {p.pk: p for p in batch}
        per_participant: dict[int, list[AuditEntry]] = defaultdict(list)
        for spec in FORMS:
            for entry in _form_entries(spec, by_id, user, names):
                per_participant[entry.participant.pk].append(entry)
        for participant in batch:
            yield from per_participant.pop(participant.pk, [])
            done += 1
            progress(done)
