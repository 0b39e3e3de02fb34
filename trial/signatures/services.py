"""Signing visits, verifying signatures, voiding those whose records changed.

21 CFR Part 11 as it applies here:
- 11.50: the signature shows the printed name, the date and time (UTC) and the meaning.
- 11.70: it is bound to the records: `content_hash` is the SHA-256 of the canonical JSON of the
  signed records' values, so it verifies against that content and no other; an edit afterwards
  makes it void (audited update, with the time and why) and the visit returns to the queue.
- 11.200(a)(1): signing asks for the password again, and the second factor when the session's
  last verification is older than settings.SIGNATURE_SECOND_FACTOR_MAX_AGE. Refused attempts are
  recorded (SigningFailure) and count toward the sign-in lockout (django-axes, via authenticate()).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Visit, VisitStatus
from trial.accounts.sessions import SIGNED_IN_AT
from trial.accounts.two_factor import VerificationThrottled, otp_token_verify
from trial.audit import actor_metadata, audit_context, event_model_for
from trial.models import Site, User
from trial.reports.content import record_event_sources, sha256_of, visit_records
from trial.signatures.models import Signature, SignatureStatus, SigningFailure

logger = logging.getLogger(__name__)

# Session key: when this session last passed the second factor for signing (POSIX seconds).
SECOND_FACTOR_AT = "signatures_second_factor_at"
WRONG_PASSWORD, WRONG_CODE, CODE_MISSING = "wrong password", "wrong second-factor code", "code missing"


class SigningRefused(ValidationError):
    """Credentials refused; the message is for the signer."""


@dataclass(frozen=True)
class Verification:
    valid: bool
    stored_hash: str
    current_hash: str

    @property
    def content_changed(self) -> bool:
        return self.stored_hash != self.current_hash


def _require_signer(actor: User, visit: Visit) -> None:
    site = visit.participant.site
    if (
        not actor.has_perm("signatures.sign_visit")
        or not Site.objects.visible_to(actor).filter(pk=site.pk).exists()
    ):
        raise PermissionDenied


def failures_in_window(user: User, *, now: dt.datetime | None = None) -> int:
    since = (now or timezone.now()) - settings.AXES_COOLOFF_TIME
    return SigningFailure.objects.filter(user=user, at__gte=since).count()


def second_factor_due(session, *, now: dt.datetime | None = None) -> bool:
    """Whether signing now needs a second-factor code: the session last passed it (at sign-in or
    at an earlier signature) longer ago than settings.SIGNATURE_SECOND_FACTOR_MAX_AGE."""
    if session is None:
        return True
    last = max(float(session.get(SIGNED_IN_AT) or 0), float(session.get(SECOND_FACTOR_AT) or 0))
    now_ts = (now or timezone.now()).timestamp()
    return now_ts - last > settings.SIGNATURE_SECOND_FACTOR_MAX_AGE.total_seconds()


def _refuse(actor: User, visits: list[Visit], reason: str, request, message: str) -> None:
    remote_addr = request.META.get("REMOTE_ADDR") if request is not None else None
    SigningFailure.objects.bulk_create(
        [SigningFailure(user=actor, visit=visit, reason=reason, remote_addr=remote_addr) for visit in visits]
    )
    logger.warning("Signing refused for user %s (%s) on visits %s", actor.pk, reason, [v.pk for v in visits])
    raise SigningRefused(message)


def credentials_check(*, actor: User, visits: list[Visit], password: str, otp_token: str, request) -> bool:
    """Check the signer's password (and code when due). Returns whether a code was checked.

    Not atomic on purpose: a refused attempt is recorded even though signing does not happen."""
    limit = settings.SIGNATURE_FAILURE_LIMIT
    if failures_in_window(actor) >= limit:
        raise SigningRefused(
            _("Signing is locked after %(n)d refused attempts. Try again later or ask an administrator.")
            % {"n": limit}
        )
    if request is not None:
        # Through the authentication backends, so django-axes counts a wrong password toward the
        # account's sign-in lockout and refuses a locked account.
        user = authenticate(request, username=actor.email, password=password)
        password_ok = user is not None and user.pk == actor.pk
    else:
        password_ok = actor.check_password(password)
    if not password_ok:
        _refuse(actor, visits, WRONG_PASSWORD, request, _("The password is not correct. Nothing was signed."))
    session = getattr(request, "session", None)
    if not second_factor_due(session):
        return False
    if not (otp_token or "").strip():
        _refuse(
            actor,
            visits,
            CODE_MISSING,
            request,
            _("Your last second-factor check is too old: enter the code from your authenticator app."),
        )
    try:
        device = otp_token_verify(user=actor, token=otp_token)
    except VerificationThrottled as throttled:
        raise SigningRefused(throttled.message) from None
    if device is None:
        _refuse(actor, visits, WRONG_CODE, request, _("The code is not correct. Nothing was signed."))
    if session is not None:
        session[SECOND_FACTOR_AT] = timezone.now().timestamp()
    return True


def visits_sign(
    *, actor: User, visits: list[Visit], meaning: str, password: str, otp_token: str = "", request=None
) -> list[Signature]:
    """Sign each visit with `meaning` after checking the signer's credentials once. All or none."""
    if not visits:
        raise ValidationError(_("Choose at least one visit to sign."))
    for visit in visits:
        _require_signer(actor, visit)
    second_factor = credentials_check(
        actor=actor, visits=visits, password=password, otp_token=otp_token, request=request
    )
    return _sign(actor=actor, visits=visits, meaning=meaning, second_factor=second_factor)


@transaction.atomic
def _sign(*, actor: User, visits: list[Visit], meaning: str, second_factor: bool) -> list[Signature]:
    from trial.reports.models import ReportTrigger
    from trial.reports.tasks import report_enqueue_on_commit

    signatures = []
    for visit in sorted(visits, key=lambda v: v.pk):  # lock in one order: no deadlock between signers
        locked = Visit.objects.select_for_update().select_related("participant").get(pk=visit.pk)
        if locked.status != VisitStatus.COMPLETED:
            raise ValidationError(
                _("%(visit)s is not completed; only completed visits are signed.") % {"visit": locked}
            )
        signature_void_if_changed_for_visit(locked)
        if Signature.objects.filter(visit=locked, status=SignatureStatus.VALID).exists():
            raise ValidationError(_("%(visit)s is already signed.") % {"visit": locked})
        content = visit_records(locked)
        signature = Signature(
            visit=locked,
            signer=actor,
            printed_name=actor.full_name,
            signer_email=actor.email,
            meaning=meaning,
            signed_at=timezone.now(),
            content=content,
            content_hash=sha256_of(content),
            second_factor_checked=second_factor,
        )
        signature.full_clean()
        with audit_context(
            reason=f"visit signed: {signature.get_meaning_display()}", **actor_metadata(actor)
        ):
            signature.save()
        signatures.append(signature)
        # The report's signature block shows it: a new version after commit.
        report_enqueue_on_commit(locked.pk, ReportTrigger.DATA_CHANGED)
    return signatures


def signature_verify(signature: Signature) -> Verification:
    """Does the signature still verify? Its stored content must hash to its hash (the signature row
    is intact) and the visit's records now must hash to the same value (they did not change)."""
    current = sha256_of(visit_records(signature.visit))
    intact = sha256_of(signature.content) == signature.content_hash
    return Verification(
        valid=signature.status == SignatureStatus.VALID and intact and current == signature.content_hash,
        stored_hash=signature.content_hash,
        current_hash=current,
    )


def _void(signature: Signature, reason: str) -> None:
    with audit_context(reason=reason, actor="signature verification", user=None):
        signature.status = SignatureStatus.VOID
        signature.voided_at = timezone.now()
        signature.void_reason = reason
        signature.save(update_fields=["status", "voided_at", "void_reason"])


@transaction.atomic
def signature_void_if_changed_for_visit(visit: Visit) -> int:
    """Void the visit's valid signatures that no longer verify. Returns how many were voided."""
    voided = 0
    for signature in Signature.objects.select_for_update().filter(visit=visit, status=SignatureStatus.VALID):
        check = signature_verify(signature)
        if not check.valid:
            reason = _("The signed records changed after signing (content hash %(new)s, signed %(old)s).") % {
                "new": check.current_hash[:16],
                "old": check.stored_hash[:16],
            }
            _void(signature, reason)
            voided += 1
    return voided


def changed_since_signing(signatures: QuerySet[Signature]) -> QuerySet[Signature]:
    """Valid signatures whose visit has an audit event in a signed table not older than the
    signing. One query; each candidate is then confirmed by its hash (an edit back to the same
    values keeps the signature). Times are the database's (pghistory stamps events with the
    transaction's now()): the signature's own insert event gives its time in that clock."""
    signed_at = Subquery(
        event_model_for(Signature)
        .objects.filter(pgh_obj_id=OuterRef("pk"), pgh_label="insert")
        .values("pgh_created_at")[:1]
    )
    condition = None
    for model, lookup in record_event_sources():
        exists = Exists(
            event_model_for(model).objects.filter(
                **{lookup: OuterRef("visit_id")}, pgh_created_at__gte=OuterRef("db_signed_at")
            )
        )
        condition = exists if condition is None else condition | exists
    return signatures.filter(status=SignatureStatus.VALID).annotate(db_signed_at=signed_at).filter(condition)


def signatures_verify_changed(visits: QuerySet[Visit] | None = None) -> int:
    """Void every valid signature (of `visits`, or all) whose records changed. Called by the
    minute tick and before the queue and a visit's signature page are shown."""
    signatures = Signature.objects.all()
    if visits is not None:
        signatures = signatures.filter(visit__in=visits)
    voided = 0
    for visit_id in set(changed_since_signing(signatures).values_list("visit_id", flat=True)):
        voided += signature_void_if_changed_for_visit(Visit.objects.get(pk=visit_id))
    return voided


def visits_to_sign(user: User) -> QuerySet[Visit]:
    """Completed visits at the user's sites with no valid signature, oldest first; `was_signed`
    marks those whose signature was voided by a later edit."""
    signatures = Signature.objects.filter(visit=OuterRef("pk"))
    return (
        Visit.objects.visible_to(user)
        .filter(status=VisitStatus.COMPLETED)
        .exclude(Exists(signatures.filter(status=SignatureStatus.VALID)))
        .annotate(was_signed=Exists(signatures.filter(status=SignatureStatus.VOID)))
        .select_related("participant", "participant__site")
        .order_by("visit_date", "participant__study_id", "sequence")
    )
