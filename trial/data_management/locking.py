"""Lock and unlock data (a visit, a participant, the whole study). The lock itself is enforced
by PostgreSQL (locks_sql.py); these services only write the lock table, audited."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Participant, Visit
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, reason_required
from trial.data_management.models import DataLock, LockScope
from trial.locks import lock_in_force
from trial.models import User

PERMISSION = "data_management.manage_locks"


def _require(actor: User, participant: Participant | None) -> None:
    if participant is not None:
        require_site_permission(actor, PERMISSION, participant.site)
    elif not (actor.has_perm(PERMISSION) and actor.has_perm("trial.view_all_sites")):
        raise PermissionDenied  # a study lock concerns every site


@transaction.atomic
def lock_create(
    *, actor: User, visit: Visit | None = None, participant: Participant | None = None, reason: str = ""
) -> DataLock:
    """Lock `visit`, or `participant` (all their data, screening to end of study), or, with
    neither, the whole study. `reason` is shown on every page of the locked data."""
    if visit is not None:
        scope, participant = LockScope.VISIT, visit.participant
    elif participant is not None:
        scope = LockScope.PARTICIPANT
    else:
        scope = LockScope.STUDY
    _require(actor, participant)
    reason = (reason or "").strip()
    try:
        with (
            transaction.atomic(),
            audit_context(
                reason=_("Data locked") + (f": {reason}" if reason else ""), **actor_metadata(actor)
            ),
        ):
            return DataLock.objects.create(
                scope=scope,
                participant=participant,
                visit=visit,
                locked_by=actor,
                locked_at=timezone.now(),
                reason=reason,
            )
    except IntegrityError:
        raise ValidationError(_("These data are already locked.")) from None


@transaction.atomic
def lock_release(*, actor: User, lock: DataLock, reason: str) -> DataLock:
    """Unlock, saying why (kept on the lock and in its audit trail)."""
    reason = reason_required(reason)
    lock = (
        DataLock.objects.select_for_update(of=("self",)).select_related("participant__site").get(pk=lock.pk)
    )
    _require(actor, lock.participant)
    if lock.released_at is not None:
        raise ValidationError(_("This lock was already released."))
    lock.released_by = actor
    lock.released_at = timezone.now()
    lock.release_reason = reason
    with audit_context(reason=reason, **actor_metadata(actor)):
        lock.save()
    return lock


def active_lock_for(*, visit: Visit | None = None, participant: Participant | None = None) -> DataLock | None:
    """The lock that makes this visit's (or participant's) data read-only, if any."""
    return lock_in_force(visit=visit, participant=participant)
