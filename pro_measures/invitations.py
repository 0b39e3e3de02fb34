"""Questionnaire invitations: planning per visit, opaque links, answers saved as the patient goes,
submission with scores, revoke, resend and paper entry.

Links: `/q/<token>` where the token is 256 random bits (secrets.token_urlsafe(32)); only its
SHA-256 is stored (InvitationLink). Every saved answer is audited with the invitation as the actor
(never the token).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Participant, ParticipantStatus, Visit, VisitStatus
from participants.visits import visit_records_changed
from pro_measures.instruments import INSTRUMENTS, instrument
from pro_measures.models import (
    OPEN_STATUSES,
    Invitation,
    InvitationLink,
    InvitationStatus,
    Reminder,
    ReminderState,
    Response,
    ResponseSource,
    Score,
)
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, reason_required
from trial.locks import require_unlocked
from trial.models import User
from trial.protocol import PROTOCOL

TOKEN_BYTES = 32  # 256 bits; the issue asks for at least 128


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_token_generate() -> tuple[str, str]:
    """A new random link token and the hash stored for it: (token, token_hash)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def link_create(invitation: Invitation) -> str:
    """A new link token for one e-mail; returns the token (never stored)."""
    token, hashed = link_token_generate()
    InvitationLink.objects.create(invitation=invitation, token_hash=hashed)
    return token


def local_datetime(day: dt.date, hour: int, zone) -> dt.datetime:
    """`hour`:00 on `day` in `zone`, as an aware datetime (stored in UTC). Across a daylight-saving
    change the wall-clock hour is kept."""
    return dt.datetime.combine(day, dt.time(hour), tzinfo=zone)


def end_of_day(day: dt.date, zone) -> dt.datetime:
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone) - dt.timedelta(
        microseconds=1
    )


def _window(visit: Visit, participant: Participant) -> tuple[dt.datetime, dt.datetime]:
    zone = participant.zone
    rules = PROTOCOL.reminders
    opens_day = visit.window_opens + dt.timedelta(days=rules.invitation_days_after_window_opens)
    opens_at = local_datetime(opens_day, rules.send_hour_local, zone)
    return opens_at, end_of_day(visit.window_closes, zone)


def invitations_plan_for_participant(
    *, participant_id: int, horizon_days: int = 2, now: dt.datetime | None = None
) -> int:
    """Create the invitations (and their reminder rows) of every visit whose window opens within
    `horizon_days`, for an on-study participant who may be contacted. Idempotent: returns the
    number created."""
    from pro_measures import reminders

    now = now or timezone.now()
    participant = Participant.objects.contactable().filter(pk=participant_id).first()
    if participant is None:
        return 0
    today = timezone.localtime(now, participant.zone).date()
    created = 0
    visits = participant.visits.filter(
        status=VisitStatus.PLANNED,
        window_opens__lte=today + dt.timedelta(days=horizon_days),
        window_closes__gte=today,
    )
    with (
        transaction.atomic(),
        audit_context(reason="questionnaires planned for the visit window", actor="system: invitations"),
    ):
        for visit in visits:
            opens_at, valid_until = _window(visit, participant)
            for code in visit.definition.instruments:
                definition = INSTRUMENTS[code]
                invitation, was_created = Invitation.objects.get_or_create(
                    visit=visit,
                    instrument_code=code,
                    defaults={
                        "participant": participant,
                        "instrument_version": definition.version,
                        "opens_at": opens_at,
                        "valid_until": valid_until,
                    },
                )
                if was_created:
                    created += 1
                    reminders.schedule_for_invitation(invitation)
    return created


def invitations_plan_due(*, now: dt.datetime | None = None) -> int:
    """The beat's hourly sweep: plan invitations for every contactable participant with a visit
    window opening soon (the same function the enrolment enqueues for one participant)."""
    now = now or timezone.now()
    horizon = now.date() + dt.timedelta(days=3)
    ids = (
        Participant.objects.contactable()
        .filter(
            visits__status=VisitStatus.PLANNED,
            visits__window_opens__lte=horizon,
            visits__window_closes__gte=now.date() - dt.timedelta(days=1),
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    return sum(invitations_plan_for_participant(participant_id=pid, now=now) for pid in ids)


# --- The patient's side --------------------------------------------------------------------------


class LinkProblem(Exception):
    """Why a link cannot be used; `kind` picks the friendly page (unknown, used, expired, revoked)."""

    def __init__(self, kind: str, invitation: Invitation | None = None):
        super().__init__(kind)
        self.kind = kind
        self.invitation = invitation


def invitation_for_token(token: str, *, now: dt.datetime | None = None) -> Invitation:
    """The invitation behind a link, if it can still be answered; raises LinkProblem otherwise.
    An unknown token and a malformed one look the same, and reveal nothing about participants."""
    now = now or timezone.now()
    if not token or len(token) > 100:
        raise LinkProblem("unknown")
    link = (
        InvitationLink.objects.select_related("invitation__participant__site", "invitation__visit")
        .filter(token_hash=token_hash(token))
        .first()
    )
    if link is None:
        raise LinkProblem("unknown")
    invitation = link.invitation
    if invitation.status == InvitationStatus.COMPLETED:
        raise LinkProblem("used", invitation)
    if invitation.status == InvitationStatus.REVOKED:
        raise LinkProblem("revoked", invitation)
    participant = invitation.participant
    if now > invitation.valid_until or participant.status != ParticipantStatus.ON_STUDY:
        raise LinkProblem("expired", invitation)
    if not Participant.objects.contactable().filter(pk=participant.pk).exists():
        raise LinkProblem("revoked", invitation)
    if now < invitation.opens_at:
        raise LinkProblem("not_yet", invitation)
    return invitation


def _patient_context(invitation: Invitation):
    # The patient is not a user: the invitation is the actor of their answers.
    return audit_context(actor=f"patient via invitation {invitation.pk}", invitation=invitation.pk, user=None)


@transaction.atomic
def invitation_open(*, invitation: Invitation, now: dt.datetime | None = None) -> Invitation:
    now = now or timezone.now()
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.opened_at is None:
        with _patient_context(locked):
            locked.opened_at = now
            if locked.status in (InvitationStatus.SCHEDULED, InvitationStatus.SENT):
                locked.status = InvitationStatus.OPENED
            locked.save(update_fields=["opened_at", "status"])
    return locked


@transaction.atomic
def response_save_answers(
    *, invitation: Invitation, answers: dict[str, Any], now: dt.datetime | None = None
) -> Response:
    """Save some answers (one page of the form) and keep the rest: the patient can leave and
    resume with the same link."""
    now = now or timezone.now()
    require_unlocked(visit=invitation.visit)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status not in OPEN_STATUSES:
        raise ValidationError(_("This questionnaire can no longer be changed."))
    definition = instrument(locked.instrument_code)
    try:
        cleaned = definition.clean_answers(answers)
    except ValueError as exc:
        raise ValidationError(
            _("An answer was not one of the choices offered (%(detail)s).") % {"detail": exc}
        ) from None
    cleared = [link_id for link_id, value in answers.items() if value is None]
    with _patient_context(locked):
        # The invitation row is locked, so no other request creates its response meanwhile. The
        # first page is one INSERT with its answers: one audit event per page saved.
        response = Response.objects.select_for_update().filter(invitation=locked).first()
        if response is None:
            response = Response(
                invitation=locked,
                instrument_code=locked.instrument_code,
                instrument_version=locked.instrument_version,
            )
        merged = {**response.answers, **cleaned}
        for link_id in cleared:
            merged.pop(link_id, None)
        if response.pk is None:
            response.answers = merged
            response.save()
        elif merged != response.answers:
            response.answers = merged
            response.save(update_fields=["answers", "updated_at"])
        if locked.status != InvitationStatus.IN_PROGRESS or locked.started_at is None:
            locked.status = InvitationStatus.IN_PROGRESS
            locked.started_at = locked.started_at or now
            locked.opened_at = locked.opened_at or now
            locked.save(update_fields=["status", "started_at", "opened_at"])
    return response


def missing_required(definition, answers: dict[str, Any]) -> list[str]:
    return [item.link_id for item in definition.items if item.required and answers.get(item.link_id) is None]


def _store_scores(response: Response, definition) -> list[Score]:
    values = definition.score(response.answers)
    return [
        Score.objects.update_or_create(
            response=response,
            name=name,
            defaults={
                "value": value,
                "instrument_code": definition.code,
                "instrument_version": definition.version,
            },
        )[0]
        for name, value in values.items()
    ]


def _complete(invitation: Invitation, response: Response, now: dt.datetime) -> None:
    definition = instrument(invitation.instrument_code)
    if response.submitted_at != now:  # a paper response is saved already submitted
        response.submitted_at = now
        response.save(update_fields=["submitted_at", "updated_at"])
    _store_scores(response, definition)
    invitation.status = InvitationStatus.COMPLETED
    invitation.completed_at = now
    invitation.save(update_fields=["status", "completed_at"])
    # Completing stops every pending reminder at once.
    Reminder.objects.filter(invitation=invitation, state=ReminderState.PENDING).update(
        state=ReminderState.CANCELLED, cancelled_reason="completed"
    )
    # Scores of a visit's questionnaire are in its report and its signed records.
    visit_records_changed(invitation.visit_id)


@transaction.atomic
def response_submit(*, invitation: Invitation, now: dt.datetime | None = None) -> Response:
    """Submit: every required item answered, scores computed and stored with the version."""
    now = now or timezone.now()
    require_unlocked(visit=invitation.visit)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status not in OPEN_STATUSES:
        raise ValidationError(_("This questionnaire was already submitted or closed."))
    response = Response.objects.select_for_update().filter(invitation=locked).first()
    definition = instrument(locked.instrument_code)
    if response is None or missing_required(definition, response.answers):
        raise ValidationError(_("Some questions are not answered yet."))
    with _patient_context(locked):
        _complete(locked, response, now)
    return response


@transaction.atomic
def response_enter_paper(
    *,
    actor: User,
    invitation: Invitation,
    answers: dict[str, Any],
    completed_on: dt.date,
    blanks_confirmed: bool = False,
) -> Response:
    """Staff enter a paper questionnaire on the patient's behalf (source recorded). Questions the
    patient left blank on paper are stored as not answered once the person entering confirms it
    (`blanks_confirmed`); the audit reason names them, and scores that need them are None."""
    require_site_permission(actor, "pro_measures.change_invitation", invitation.participant.site)
    require_unlocked(visit=invitation.visit)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status not in OPEN_STATUSES:
        raise ValidationError(_("This questionnaire was already completed or closed."))
    definition = instrument(locked.instrument_code)
    try:
        cleaned = definition.clean_answers(answers)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    missing = missing_required(definition, cleaned)
    if missing and not blanks_confirmed:
        raise ValidationError(_("Unanswered questions: %(items)s") % {"items": ", ".join(missing)})
    now = timezone.now()
    reason = f"paper questionnaire completed on {completed_on.isoformat()}"
    if missing:
        reason += f"; left blank on the paper form: {', '.join(missing)}"
    with audit_context(reason=reason, **actor_metadata(actor)):
        # One write of the response (answers, source and submission together): one audit event.
        response = Response.objects.select_for_update().filter(invitation=locked).first() or Response(
            invitation=locked,
            instrument_code=locked.instrument_code,
            instrument_version=locked.instrument_version,
        )
        response.answers = cleaned
        response.source = ResponseSource.PAPER
        response.entered_by = actor
        response.submitted_at = now
        response.save()
        _complete(locked, response, now)
    return response


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation, reason: str) -> Invitation:
    """Revoke: every link stops working and pending reminders are cancelled at once."""
    require_site_permission(actor, "pro_measures.change_invitation", invitation.participant.site)
    reason = reason_required(reason)
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.status not in OPEN_STATUSES:
        raise ValidationError(_("Only an open questionnaire can be revoked."))
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.status = InvitationStatus.REVOKED
        locked.revoked_at = timezone.now()
        locked.revoked_reason = reason
        locked.save(update_fields=["status", "revoked_at", "revoked_reason"])
        Reminder.objects.filter(invitation=locked, state=ReminderState.PENDING).update(
            state=ReminderState.CANCELLED, cancelled_reason="revoked"
        )
    return locked


@transaction.atomic
def invitation_resend(*, actor: User, invitation: Invitation) -> Reminder:
    """Send the invitation again now (a new link; earlier links keep working)."""
    from pro_measures import reminders

    require_site_permission(actor, "pro_measures.change_invitation", invitation.participant.site)
    if invitation.status_at(timezone.now()) not in OPEN_STATUSES:
        raise ValidationError(_("Only an open questionnaire can be sent again."))
    return reminders.schedule_resend(invitation)
