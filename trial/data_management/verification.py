"""Source data verification (ICH E6(R3) 3.11.4): mark a participant, a visit, one form or single
fields of a record verified in one action; read whether the data changed since.

What was verified is every clinical record of the scope (the visit itself and the records
pointing at it; for a participant also the participant, their visits and lesions; for a form,
the records of that kind at the visit, or the one record), each with the id of its last audit
event. Reading the status compares those ids with the event tables: one query per kind of
record, however many records. A field-level verification reads the record's later events and is
cleared only when one of its fields took another value; a form's is cleared by any change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Participant, Visit
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, audited_models, event_model_for
from trial.data_management.models import Verification, VerifiedRecord
from trial.models import User

# The domain apps hold the clinical data; the read side's own records (queries, signatures,
# reports) are about the data, not part of it.
CLINICAL_APPS = ("participants", "lesions", "pro_measures")


def _fk_names(model, target) -> list[str]:
    return [
        f.name
        for f in model._meta.concrete_fields
        if f.is_relation and (f.many_to_one or f.one_to_one) and f.related_model is target
    ]


def clinical_records(*, visit: Visit | None = None, participant: Participant | None = None) -> dict:
    """{model: set of pks} of the clinical records of a visit, or of a participant."""
    records: dict[type[models.Model], set[int]] = {}
    for model in audited_models():
        if model._meta.app_label not in CLINICAL_APPS:
            continue
        condition = models.Q(pk__in=[])
        if visit is not None:
            if model is Visit:
                condition = models.Q(pk=visit.pk)
            for name in _fk_names(model, Visit):
                condition |= models.Q(**{name: visit})
        else:
            if model is Participant:
                condition = models.Q(pk=participant.pk)
            for name in _fk_names(model, Participant):
                condition |= models.Q(**{name: participant})
            for name in _fk_names(model, Visit):
                condition |= models.Q(**{f"{name}__participant": participant})
        if condition == models.Q(pk__in=[]):
            continue
        pks = set(model._base_manager.filter(condition).values_list("pk", flat=True))
        if pks:
            records[model] = pks
    return records


def form_records(*, model, visit: Visit | None = None, object_id: int | None = None) -> dict:
    """{model: set of pks} of one form: the records of `model` at `visit` (e.g. each lesion's
    measurement row), or the one record `object_id`."""
    if object_id is not None:
        pks = set(model._base_manager.filter(pk=object_id).values_list("pk", flat=True))
    else:
        pks = clinical_records(visit=visit).get(model, set())
    return {model: pks} if pks else {}


def verifiable_fields(model) -> list[str]:
    """The fields a monitor compares with the source: entered values, not links or identifiers."""
    hidden = frozenset(getattr(model, "IDENTIFYING_FIELDS", ()))
    return [
        f.name
        for f in model._meta.concrete_fields
        if not f.primary_key and f.editable and not f.is_relation and f.name not in hidden
    ]


def _last_events(model, pks) -> dict[int, int]:
    rows = (
        event_model_for(model)
        .objects.filter(pgh_obj_id__in=pks)
        .values("pgh_obj_id")
        .annotate(last=Max("pgh_id"))
        .values_list("pgh_obj_id", "last")
    )
    return {int(obj_id): last for obj_id, last in rows}


def _store(*, actor: User, participant: Participant, records: dict, reason: str, **scope) -> Verification:
    require_site_permission(actor, "data_management.verify_source", participant.site)
    with audit_context(reason=reason, **actor_metadata(actor)):
        verification = Verification.objects.create(
            participant=participant, verified_by=actor, verified_at=timezone.now(), **scope
        )
        rows = []
        for model, pks in records.items():
            content_type = ContentType.objects.get_for_model(model)
            for obj_id, last in _last_events(model, pks).items():
                rows.append(
                    VerifiedRecord(
                        verification=verification,
                        content_type=content_type,
                        object_id=obj_id,
                        last_event_id=last,
                    )
                )
        if not rows:
            raise ValidationError(_("There is nothing to verify yet."))
        VerifiedRecord.objects.bulk_create(rows)
    return verification


@transaction.atomic
def verification_record(
    *, actor: User, visit: Visit | None = None, participant: Participant | None = None
) -> Verification:
    """Mark every record of `visit` (or of `participant`) verified now."""
    if (visit is None) == (participant is None):
        raise ValueError("verify a visit or a participant")
    participant = visit.participant if visit is not None else participant
    return _store(
        actor=actor,
        participant=participant,
        records=clinical_records(visit=visit, participant=None if visit else participant),
        reason=_("Source data verified"),
        visit=visit,
    )


@transaction.atomic
def form_verification_record(
    *,
    actor: User,
    model: type[models.Model],
    visit: Visit | None = None,
    record: models.Model | None = None,
    field_names: list[str] | tuple[str, ...] = (),
) -> Verification:
    """Mark one form verified now: every record of `model` at `visit` (a table such as the
    visit's ultrasound measurements), or the one `record`; with `field_names`, only those fields
    of `record`."""
    from trial.data_management.services import record_participant_and_visit

    field_names = sorted(set(field_names))
    if record is not None:
        participant, record_visit = record_participant_and_visit(record)
        visit = visit or record_visit
        records = form_records(model=model, object_id=record.pk)
    else:
        if visit is None:
            raise ValueError("verify a form of a visit, or one record")
        if field_names:
            raise ValidationError(_("Fields are verified on one record."))
        participant = visit.participant
        records = form_records(model=model, visit=visit)
    unknown = set(field_names) - set(verifiable_fields(model))
    if unknown:
        raise ValidationError(_("This form has no such field: %(f)s") % {"f": ", ".join(sorted(unknown))})
    form = str(model._meta.verbose_name)
    reason = (
        _("Source data verified: %(form)s, fields %(fields)s")
        % {"form": form, "fields": ", ".join(field_names)}
        if field_names
        else _("Source data verified: %(form)s") % {"form": form}
    )
    return _store(
        actor=actor,
        participant=participant,
        records=records,
        reason=reason,
        visit=visit,
        content_type=ContentType.objects.get_for_model(model),
        object_id=record.pk if record is not None else None,
        field_names=field_names,
    )


@dataclass
class VerificationStatus:
    verification: Verification
    changed: list[str] = field(default_factory=list)  # "<form> #<id>" changed or added since
    changed_fields: list[str] = field(default_factory=list)  # of a field-level verification

    @property
    def cleared(self) -> bool:
        return bool(self.changed)


def _current_records(verification: Verification) -> dict:
    if verification.content_type_id is not None:
        return form_records(
            model=verification.content_type.model_class(),
            visit=verification.visit,
            object_id=verification.object_id,
        )
    return clinical_records(
        visit=verification.visit, participant=None if verification.visit_id else verification.participant
    )


def changed_fields(model, object_id: int, since_event_id: int, names) -> set[str]:
    """Which of `names` took another value in the record's audit events after `since_event_id`
    (all of them if the record was deleted). One query."""
    rows = list(
        event_model_for(model)
        .objects.filter(pgh_obj_id=object_id, pgh_id__gte=since_event_id)
        .order_by("pgh_id")
        .values("pgh_id", "pgh_label", *names)
    )
    if not rows or rows[0]["pgh_id"] != since_event_id:
        return set(names)  # the verified state is not in the trail: treat every field as changed
    base, changed = rows[0], set()
    for row in rows[1:]:
        if row["pgh_label"] == "delete":
            return set(names)
        changed |= {name for name in names if row[name] != base[name]}
    return changed


def verification_status(verification: Verification) -> VerificationStatus:
    """Whether the verified records are unchanged: a newer audit event of any of them, or a
    record of the scope that did not exist then, clears the verification. A field-level one is
    cleared only when one of its fields took another value."""
    stored: dict[tuple[int, int], int] = {
        (r.content_type_id, r.object_id): r.last_event_id for r in verification.records.all()
    }
    status = VerificationStatus(verification)
    if verification.field_names:
        model = verification.content_type.model_class()
        since = stored.get((verification.content_type_id, verification.object_id))
        changed = (
            changed_fields(model, verification.object_id, since, verification.field_names)
            if since is not None
            else set(verification.field_names)
        )
        status.changed_fields = sorted(changed)
        status.changed = [str(model._meta.get_field(name).verbose_name) for name in status.changed_fields]
        return status
    current = _current_records(verification)
    seen = set()
    for model, pks in current.items():
        content_type = ContentType.objects.get_for_model(model)
        for obj_id, last in sorted(_last_events(model, pks).items()):
            seen.add((content_type.pk, obj_id))
            if stored.get((content_type.pk, obj_id)) != last:
                status.changed.append(f"{model._meta.verbose_name} #{obj_id}")
    # A verified record that is gone (deleted) changed too.
    status.changed.extend(f"#{obj_id} ({_('deleted')})" for (_ct, obj_id) in sorted(set(stored) - seen))
    return status


def latest_verification_status(*, visit: Visit | None = None, participant: Participant | None = None):
    """The status of the newest verification of this visit (or participant), or None."""
    verifications = Verification.objects.filter(content_type__isnull=True).select_related(
        "verified_by", "participant", "visit"
    )
    if visit is not None:
        verification = verifications.filter(visit=visit).first()
    else:
        verification = verifications.filter(participant=participant, visit__isnull=True).first()
    return verification_status(verification) if verification else None


@dataclass
class FormRow:
    """One form of a visit on its verification page: its records and its latest verification."""

    model: type[models.Model]
    label: str
    record_ids: list[int]
    status: VerificationStatus | None


def visit_forms_status(visit: Visit) -> list[FormRow]:
    """Each kind of record at the visit (the visit itself, its measurement and injection tables,
    pregnancy tests, AEs, the AE review...) with the status of its newest form verification."""
    latest: dict[int, Verification] = {}
    for verification in Verification.objects.filter(
        visit=visit, content_type__isnull=False, object_id__isnull=True
    ).select_related("verified_by", "content_type"):
        latest.setdefault(verification.content_type_id, verification)
    rows = []
    for model, pks in clinical_records(visit=visit).items():
        verification = latest.get(ContentType.objects.get_for_model(model).pk)
        rows.append(
            FormRow(
                model=model,
                label=str(model._meta.verbose_name).capitalize(),
                record_ids=sorted(pks),
                status=verification_status(verification) if verification else None,
            )
        )
    return sorted(rows, key=lambda row: row.label)


@dataclass
class FieldRow:
    name: str
    label: str
    value: object
    verification: Verification | None  # the newest that covers this field (form or field level)
    cleared: bool


@dataclass
class FormStatus:
    verification: Verification
    cleared: bool


@dataclass
class RecordStatus:
    form: FormStatus | None  # the newest whole-form verification covering the record
    fields: list[FieldRow]


def record_status(record: models.Model) -> RecordStatus:
    """A record's newest whole-form verification (of the record, or of its table at the visit)
    and, field by field, the newest verification covering it (a whole-form one covers every
    field) and whether that field took another value since."""
    model = type(record)
    content_type = ContentType.objects.get_for_model(model)
    verifications = list(
        Verification.objects.filter(content_type=content_type)
        .filter(
            models.Q(object_id=record.pk)
            | models.Q(
                object_id__isnull=True, records__content_type=content_type, records__object_id=record.pk
            )
        )
        .distinct()
        .order_by("-verified_at", "-pk")
        .select_related("verified_by")
        .prefetch_related("records")
    )
    since = {
        v.pk: next(
            (
                r.last_event_id
                for r in v.records.all()
                if (r.content_type_id, r.object_id) == (content_type.pk, record.pk)
            ),
            None,
        )
        for v in verifications
    }
    last = _last_events(model, [record.pk]).get(record.pk)
    whole = next((v for v in verifications if not v.field_names), None)
    names = verifiable_fields(model)
    covering: dict[str, Verification] = {}
    for verification in verifications:  # newest first
        for name in verification.field_names or names:
            covering.setdefault(name, verification)
    changed: dict[int, set[str]] = {}
    for verification in {v.pk: v for v in covering.values()}.values():
        fields = [name for name, v in covering.items() if v.pk == verification.pk]
        if since[verification.pk] is None:
            changed[verification.pk] = set(fields)
        elif since[verification.pk] == last:
            changed[verification.pk] = set()  # no event since: nothing to read
        else:
            changed[verification.pk] = changed_fields(model, record.pk, since[verification.pk], fields)
    rows = [
        FieldRow(
            name=name,
            label=str(model._meta.get_field(name).verbose_name).capitalize(),
            value=getattr(record, f"get_{name}_display", lambda n=name: getattr(record, n))(),
            verification=covering.get(name),
            cleared=name in changed.get(covering[name].pk, set()) if name in covering else False,
        )
        for name in names
    ]
    form = FormStatus(whole, cleared=since[whole.pk] != last) if whole else None
    return RecordStatus(form=form, fields=rows)
