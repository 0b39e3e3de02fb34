"""Source data verification (ICH E6(R3) 3.11.4): mark a visit or a participant verified in one
action; read whether the data changed since.

What was verified is every clinical record of the scope (the visit itself and the records
pointing at it; for a participant also the participant, their visits and lesions), each with
the id of its last audit event. Reading the status compares those ids with the event tables:
one query per kind of record, however many records.
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


def _last_events(model, pks) -> dict[int, int]:
    rows = (
        event_model_for(model)
        .objects.filter(pgh_obj_id__in=pks)
        .values("pgh_obj_id")
        .annotate(last=Max("pgh_id"))
        .values_list("pgh_obj_id", "last")
    )
    return {int(obj_id): last for obj_id, last in rows}


@transaction.atomic
def verification_record(
    *, actor: User, visit: Visit | None = None, participant: Participant | None = None
) -> Verification:
    """Mark every record of `visit` (or of `participant`) verified now."""
    if (visit is None) == (participant is None):
        raise ValueError("verify a visit or a participant")
    participant = visit.participant if visit is not None else participant
    require_site_permission(actor, "data_management.verify_source", participant.site)
    records = clinical_records(visit=visit, participant=None if visit else participant)
    with audit_context(reason=_("Source data verified"), **actor_metadata(actor)):
        verification = Verification.objects.create(
            participant=participant, visit=visit, verified_by=actor, verified_at=timezone.now()
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


@dataclass
class VerificationStatus:
    verification: Verification
    changed: list[str] = field(default_factory=list)  # "<form> #<id>" changed or added since

    @property
    def cleared(self) -> bool:
        return bool(self.changed)


def verification_status(verification: Verification) -> VerificationStatus:
    """Whether the verified records are unchanged: a newer audit event of any of them, or a
    record of the scope that did not exist then, clears the verification."""
    stored: dict[tuple[int, int], int] = {
        (r.content_type_id, r.object_id): r.last_event_id for r in verification.records.all()
    }
    current = clinical_records(
        visit=verification.visit, participant=None if verification.visit_id else verification.participant
    )
    status = VerificationStatus(verification)
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
    verifications = Verification.objects.select_related("verified_by", "participant", "visit")
    if visit is not None:
        verification = verifications.filter(visit=visit).first()
    else:
        verification = verifications.filter(participant=participant, visit__isnull=True).first()
    return verification_status(verification) if verification else None
