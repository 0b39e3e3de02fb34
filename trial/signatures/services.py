"""Signing visits, eligibility and ends of study; verifying signatures, voiding those whose
records changed.

21 CFR Part 11 as it applies here:
- 11.50: the signature shows the printed name, the date and time (UTC) and the meaning.
- 11.70: it is bound to the records: `content_hash` is the SHA-256 of the canonical JSON of the
  signed records' values, so it verifies against that content and no other; an edit afterwards
  makes it void (audited update, with the time and why) and the subject returns to the queue.
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
from django.db.models import DateTimeField, Exists, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import (
    EligibilityStatus,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
    Visit,
    VisitStatus,
)
from participants.services import eligibility_confirm
from trial.accounts.sessions import SIGNED_IN_AT
from trial.accounts.two_factor import VerificationThrottled, otp_token_verify
from trial.audit import actor_metadata, audit_context, event_model_for
from trial.models import Site, User
from trial.network import client_address
from trial.reports.content import sha256_of
from trial.signatures.models import SUBJECT_KINDS, Signature, SignatureKind, SignatureStatus, SigningFailure
from trial.signatures.subjects import SUBJECTS, subject_kind
from trial.signatures.watermark import watermark_last, watermark_read, watermark_save_on_commit

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


def _require_signer(actor: User, subject: Model) -> None:
    site = subject_kind(subject).site(subject)
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


def _refuse(actor: User, subjects: list[Model], reason: str, request, message: str) -> None:
    """Log one refused attempt per subject being signed (append-only, audited), then refuse."""
    remote_addr = (client_address(request) or None) if request is not None else None
    with audit_context(reason=f"signing refused: {reason}", **actor_metadata(actor)):
        SigningFailure.objects.bulk_create(
            [
                SigningFailure(
                    user=actor,
                    kind=SUBJECT_KINDS[type(subject)],
                    **{subject_kind(subject).field: subject},
                    reason=reason,
                    remote_addr=remote_addr,
                )
                for subject in subjects
            ]
        )
    logger.warning(
        "Signing refused for user %s (%s) on %s",
        actor.pk,
        reason,
        [f"{type(s).__name__} {s.pk}" for s in subjects],
    )
    raise SigningRefused(message)


def credentials_check(*, actor: User, subjects: list[Model], password: str, otp_token: str, request) -> bool:
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
        _refuse(
            actor, subjects, WRONG_PASSWORD, request, _("The password is not correct. Nothing was signed.")
        )
    session = getattr(request, "session", None)
    if not second_factor_due(session):
        return False
    if not (otp_token or "").strip():
        _refuse(
            actor,
            subjects,
            CODE_MISSING,
            request,
            _("Your last second-factor check is too old: enter the code from your authenticator app."),
        )
    try:
        device = otp_token_verify(user=actor, token=otp_token)
    except VerificationThrottled as throttled:
        raise SigningRefused(throttled.message) from None
    if device is None:
        _refuse(actor, subjects, WRONG_CODE, request, _("The code is not correct. Nothing was signed."))
    if session is not None:
        session[SECOND_FACTOR_AT] = timezone.now().timestamp()
    return True


def subjects_sign(
    *, actor: User, subjects: list[Model], meaning: str, password: str, otp_token: str = "", request=None
) -> list[Signature]:
    """Sign each subject (visit, screening's eligibility, participant's end of study) with
    `meaning` after checking the signer's credentials once. All or none.

    Signing an eligibility is the investigator's confirmation of it: an unconfirmed checklist is
    confirmed (`participants.services.eligibility_confirm`) in the same transaction as the
    signature, so the signed content includes the confirmation."""
    if not subjects:
        raise ValidationError(_("Choose at least one item to sign."))
    for subject in subjects:
        _require_signer(actor, subject)
    second_factor = credentials_check(
        actor=actor, subjects=subjects, password=password, otp_token=otp_token, request=request
    )
    return _sign(actor=actor, subjects=subjects, meaning=meaning, second_factor=second_factor)


def visits_sign(
    *, actor: User, visits: list[Visit], meaning: str, password: str, otp_token: str = "", request=None
) -> list[Signature]:
    if not visits:
        raise ValidationError(_("Choose at least one visit to sign."))
    return subjects_sign(
        actor=actor, subjects=visits, meaning=meaning, password=password, otp_token=otp_token, request=request
    )


@transaction.atomic
def _sign(*, actor: User, subjects: list[Model], meaning: str, second_factor: bool) -> list[Signature]:
    from trial.reports.models import ReportTrigger
    from trial.reports.tasks import report_enqueue_on_commit

    signatures = []
    # Lock in one order (kind, then id): no deadlock between signers.
    for subject in sorted(subjects, key=lambda s: (SUBJECT_KINDS[type(s)], s.pk)):
        kind = subject_kind(subject)
        locked = kind.locked(subject)
        refusal = kind.refusal(locked)
        if refusal:
            raise ValidationError(refusal)
        signatures_void_if_changed(locked)
        if Signature.objects.for_subject(locked).valid().exists():
            raise ValidationError(_("%(subject)s is already signed.") % {"subject": _label(locked)})
        if kind.kind == SignatureKind.ELIGIBILITY and not locked.eligibility.is_confirmed:
            eligibility_confirm(actor=actor, screening=locked)
        content = kind.records(locked)
        signature = Signature(
            kind=kind.kind,
            **{kind.field: locked},
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
            reason=f"{kind.kind.replace('_', ' ')} signed: {signature.get_meaning_display()}",
            **actor_metadata(actor),
        ):
            signature.save()
        signatures.append(signature)
        if kind.kind == SignatureKind.VISIT:
            # The report's signature block shows it: a new version after commit.
            report_enqueue_on_commit(locked.pk, ReportTrigger.DATA_CHANGED)
    return signatures


def _label(subject: Model) -> str:
    kind = SUBJECT_KINDS[type(subject)]
    return str(subject) if kind == SignatureKind.VISIT else f"{SignatureKind(kind).label} {subject}"


def signature_verify(signature: Signature) -> Verification:
    """Does the signature still verify? Its stored content must hash to its hash (the signature row
    is intact) and the subject's records now must hash to the same value (they did not change)."""
    current = sha256_of(SUBJECTS[signature.kind].records(signature.subject))
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


# When a check may say "events up to here are known": the start of this transaction or of any other
# still open in this database, whichever is older. pghistory stamps an event with its transaction's
# start, and a transaction open now may commit an edit this check cannot see; with the check's own
# start instead, such an edit would be older than `checked_at` and never looked at again. NULL
# (keep the old mark) when a session of another role is connected: pg_stat_activity hides its
# transaction (and its backend type) from this role.
KNOWN_CURRENT_UNTIL = RawSQL(
    """SELECT CASE WHEN bool_or(backend_type IS NULL) THEN NULL ELSE least(now(), min(xact_start)) END
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
    AND (backend_type = 'client backend' OR backend_type IS NULL)""",
    (),
    output_field=DateTimeField(),
)


@transaction.atomic
def signatures_void_if_changed(subject: Model) -> int:
    """Void the subject's valid signatures that no longer verify. Returns how many were voided."""
    voided = 0
    # The mark is read before the records are (in the same statement as the lock).
    signatures = (
        Signature.objects.select_for_update(of=("self",))
        .for_subject(subject)
        .valid()
        .annotate(known_current_until=KNOWN_CURRENT_UNTIL)
    )
    for signature in signatures:
        check = signature_verify(signature)
        if check.valid:
            # Events up to the mark are known not to change the content: not a candidate again
            # (changed_since_signing) until a newer edit. Not audited (bookkeeping).
            if signature.known_current_until is not None:
                Signature.objects.filter(pk=signature.pk).update(checked_at=signature.known_current_until)
        else:
            reason = _("The signed records changed after signing (content hash %(new)s, signed %(old)s).") % {
                "new": check.current_hash[:16],
                "old": check.stored_hash[:16],
            }
            _void(signature, reason)
            voided += 1
    return voided


def changed_since_signing(signatures: QuerySet[Signature]) -> QuerySet[Signature]:
    """Valid signatures whose subject has an audit event in a signed table not older than the
    signing or than the last time the signature was found to verify (`checked_at`). One query;
    each candidate is then confirmed by its hash (an edit of fields outside the signed content
    keeps the signature, and is not looked at again). Times are the database's (pghistory stamps
    events with the transaction's now()): the signature's own insert event gives its time in that
    clock."""
    signed_at = Subquery(
        event_model_for(Signature)
        .objects.filter(pgh_obj_id=OuterRef("pk"), pgh_label="insert")
        .values("pgh_created_at")[:1]
    )
    condition = Q()
    for kind, subject in SUBJECTS.items():
        changed = None
        for model, lookup, outer in subject.event_sources:
            exists = Exists(
                event_model_for(model).objects.filter(
                    **{lookup: OuterRef(outer)}, pgh_created_at__gte=OuterRef("known_current_at")
                )
            )
            changed = exists if changed is None else changed | exists
        condition |= Q(changed, kind=kind)
    return (
        signatures.filter(status=SignatureStatus.VALID)
        .annotate(known_current_at=Greatest(signed_at, "checked_at"))  # PostgreSQL skips a NULL
        .filter(condition)
    )


def signatures_verify_changed(signatures: QuerySet[Signature] | None = None) -> int:
    """Void every valid signature (of `signatures`, or all) whose records changed. Called by the
    minute tick and before the queue and a subject's signature page are shown."""
    candidates = changed_since_signing(signatures if signatures is not None else Signature.objects.all())
    voided = 0
    for signature in candidates.select_related("visit", "screening", "participant"):
        voided += signatures_void_if_changed(signature.subject)
    return voided


def signatures_verify_changed_for(user: User) -> int:
    """`signatures_verify_changed` for the signatures the user can see: the queue's read-time
    check. Skipped when nothing a signature covers changed since the user's last completed check
    (`trial.signatures.watermark`), so an unchanged queue costs one query however many signatures
    there are; any change, or a transaction that was writing during that check and has committed
    since, runs it again."""
    name = f"user{user.pk}"
    last = watermark_last(name)
    now, committed_since = watermark_read(sites=Site.objects.visible_to(user), since=last)
    if last is not None and last.covers(now) and not committed_since:
        return 0
    voided = signatures_verify_changed(Signature.objects.visible_to(user))
    watermark_save_on_commit(name, now)
    return voided


def _waiting(queryset: QuerySet, kind: str) -> QuerySet:
    """The subjects of `queryset` with no valid signature.

    Written NOT IN (the valid signatures' subject ids), not NOT EXISTS: PostgreSQL checks NOT IN
    against one hash of those ids as a filter of the scan, which keeps the scan's order, so a list
    can walk its ordering index and stop at its page. NOT EXISTS is planned as an anti-join:
    either an index probe for each row walked (slow where the oldest subjects are all signed:
    each of them is probed) or a hash join that loses the order (all that wait sorted for each
    page). The ids are never NULL (a NULL would make NOT IN match nothing). PostgreSQL hashes them
    while it expects the hash to fit in hash_mem (with the default work_mem, 4 MB x 2: about
    260,000 valid signatures of one kind); past that it would scan the ids again for each row."""
    field = SUBJECTS[kind].field
    valid = Signature.objects.filter(
        kind=kind, status=SignatureStatus.VALID, **{f"{field}__isnull": False}
    ).values(field)
    return queryset.exclude(pk__in=valid)


@dataclass(frozen=True)
class WaitingList:
    """One kind of subject waiting for a signature, as the queue lists it: in `order`, with the
    `related` rows it shows and `was_signed` (a signature voided by a later edit).

    `trial.pagination.list_page` reads it a page at a time (`count()`, then a slice): the page's
    keys first, by a walk of the list's ordering index that reads only the columns of the order
    and of the checks (from the index alone where it covers them, as for visits), then those rows
    in full. Read in one statement, the walk would fetch from the table every row it passes
    over, the signed ones before the page too."""

    kind: str
    subjects: QuerySet  # all that wait (listed in `order`)
    order: tuple[str, ...]
    related: tuple[str, ...]

    @property
    def queryset(self) -> QuerySet:
        """All that wait, as listed."""
        return self._listed(self.subjects)

    def count(self) -> int:
        return self.subjects.count()

    def __getitem__(self, page: slice) -> list[Model]:
        keys = self.subjects.order_by(*self.order).values("pk")[page]
        return list(self._listed(self.subjects.model._default_manager.filter(pk__in=keys)))

    def _listed(self, subjects: QuerySet) -> QuerySet:
        void = Signature.objects.filter(
            kind=self.kind, status=SignatureStatus.VOID, **{SUBJECTS[self.kind].field: OuterRef("pk")}
        )
        return subjects.select_related(*self.related).annotate(was_signed=Exists(void)).order_by(*self.order)


def visits_to_sign(user: User) -> WaitingList:
    """Completed visits at the user's sites with no valid signature, oldest first (then by study
    id and visit order)."""
    return WaitingList(
        SignatureKind.VISIT,
        _waiting(Visit.objects.visible_to(user).filter(status=VisitStatus.COMPLETED), SignatureKind.VISIT),
        order=("visit_date", "participant__study_id", "sequence"),
        related=("participant", "participant__site"),
    )


def eligibility_to_sign(user: User) -> WaitingList:
    """Screenings at the user's sites whose checklist meets every criterion and has no valid
    signature (signing confirms it), not recorded as declined; oldest first."""
    return WaitingList(
        SignatureKind.ELIGIBILITY,
        _waiting(
            Screening.objects.visible_to(user)
            .filter(eligibility__status=EligibilityStatus.ELIGIBLE)
            .exclude(outcome=ScreeningOutcome.DECLINED),
            SignatureKind.ELIGIBILITY,
        ),
        order=("screening_date", "pk"),
        related=("site", "eligibility"),
    )


def ends_of_study_to_sign(user: User) -> WaitingList:
    """Participants at the user's sites whose time on study ended with no valid signature of it,
    in the order of their end."""
    return WaitingList(
        SignatureKind.END_OF_STUDY,
        _waiting(
            Participant.objects.visible_to(user).exclude(status=ParticipantStatus.ON_STUDY),
            SignatureKind.END_OF_STUDY,
        ),
        order=("ended_on", "study_id"),
        related=("site",),
    )
