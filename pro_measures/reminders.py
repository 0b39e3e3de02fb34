"""Reminders that are sent exactly once (DOMAIN.md s.7: #1, #2, #8).

Every e-mail the study owes is a Reminder row with a unique key, created ahead of time from the
protocol's ReminderRules. The beat tick claims due rows with SELECT ... FOR UPDATE SKIP LOCKED,
checks they are still wanted (questionnaire open, participant contactable), sends, and marks
them sent in the same transaction - so a restart, a second worker or a flushed Redis neither sends
twice nor loses one. Completing, revoking or withdrawing cancels pending rows at once; the tick's
check catches anything else. Changing the rules re-times rows not yet sent (`reminders_retime`).
"""

from __future__ import annotations

import datetime as dt
from smtplib import SMTPException

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from participants.models import Participant, Visit, VisitStatus
from pro_measures import emails
from pro_measures.invitations import link_create, local_datetime
from pro_measures.models import (
    OPEN_STATUSES,
    Invitation,
    InvitationStatus,
    Reminder,
    ReminderKind,
    ReminderState,
)
from trial.models import Site
from trial.protocol import PROTOCOL

MAX_ATTEMPTS = 5
BATCH_SIZE = 50


def _rules():
    return PROTOCOL.reminders


def invitation_schedule(invitation: Invitation) -> list[tuple[str, int, dt.datetime]]:
    """(kind, sequence, due) of the e-mails an invitation gets under the current rules: the
    invitation when the window opens, reminders N days later, a last call the day before the
    window closes - all at the send hour in the participant's zone, none after the window."""
    rules = _rules()
    zone = invitation.participant.zone
    opens_day = timezone.localtime(invitation.opens_at, zone).date()
    closes_day = timezone.localtime(invitation.valid_until, zone).date()
    planned = [(ReminderKind.INVITATION.value, 0, invitation.opens_at)]
    for n, days in enumerate(rules.reminder_days_after_invitation, start=1):
        planned.append(
            (
                ReminderKind.REMINDER.value,
                n,
                local_datetime(opens_day + dt.timedelta(days=days), rules.send_hour_local, zone),
            )
        )
    last_call_day = closes_day - dt.timedelta(days=rules.last_call_days_before_window_closes)
    planned.append(
        (ReminderKind.LAST_CALL.value, 0, local_datetime(last_call_day, rules.send_hour_local, zone))
    )
    due_times = set()
    result = []
    for kind, sequence, due in planned:
        # Nothing before the invitation, after the window, or twice at the same moment.
        if due < invitation.opens_at or due > invitation.valid_until or due in due_times:
            continue
        due_times.add(due)
        result.append((kind, sequence, due))
    return result


def _invitation_key(invitation_id: int, kind: str, sequence: int) -> str:
    return f"inv:{invitation_id}:{kind}:{sequence}"


def invitation_reminders(invitation: Invitation) -> list[Reminder]:
    """The invitation's reminder rows under the current rules, unsaved and pending."""
    fingerprint = _rules().fingerprint
    return [
        Reminder(
            key=_invitation_key(invitation.pk, kind, sequence),
            kind=kind,
            invitation=invitation,
            visit_id=invitation.visit_id,
            site_id=invitation.participant.site_id,
            sequence=sequence,
            due_at=due,
            rules_fingerprint=fingerprint,
        )
        for kind, sequence, due in invitation_schedule(invitation)
    ]


def schedule_for_invitation(invitation: Invitation) -> int:
    """Create the invitation's reminder rows (idempotent: the unique key makes a repeat a no-op)."""
    return len(Reminder.objects.bulk_create(invitation_reminders(invitation), ignore_conflicts=True))


def schedule_resend(invitation: Invitation) -> Reminder:
    """A coordinator's 'send again': one more row, due now."""
    count = Reminder.objects.filter(
        invitation=invitation, kind=ReminderKind.REMINDER, sequence__gte=100
    ).count()
    return Reminder.objects.create(
        key=_invitation_key(invitation.pk, ReminderKind.REMINDER, 100 + count),
        kind=ReminderKind.REMINDER,
        invitation=invitation,
        visit_id=invitation.visit_id,
        site_id=invitation.participant.site_id,
        sequence=100 + count,
        due_at=timezone.now(),
        rules_fingerprint=_rules().fingerprint,
    )


def visit_reminders_plan(*, now: dt.datetime | None = None) -> int:
    """Visit reminders to the patient N days before each planned visit (unique per visit)."""
    now = now or timezone.now()
    rules = _rules()
    horizon = now.date() + dt.timedelta(days=rules.visit_reminder_days_before + 2)
    visits = Visit.objects.filter(
        status=VisitStatus.PLANNED,
        target_date__gt=now.date(),
        target_date__lte=horizon,
        participant__in=Participant.objects.contactable(),
    ).select_related("participant")
    rows = []
    for visit in visits:
        zone = visit.participant.zone
        due = local_datetime(
            visit.target_date - dt.timedelta(days=rules.visit_reminder_days_before),
            rules.send_hour_local,
            zone,
        )
        if due < now - dt.timedelta(hours=12):
            continue
        rows.append(
            Reminder(
                key=f"visit:{visit.pk}:reminder",
                kind=ReminderKind.VISIT_REMINDER,
                visit=visit,
                site_id=visit.participant.site_id,
                due_at=max(due, now),
                rules_fingerprint=rules.fingerprint,
            )
        )
    return len(Reminder.objects.bulk_create(rows, ignore_conflicts=True))


def digests_plan(*, now: dt.datetime | None = None) -> int:
    """One digest a day per active site, to its coordinators, at the digest hour in the site's zone."""
    now = now or timezone.now()
    rules = _rules()
    rows = []
    for site in Site.objects.filter(is_active=True):
        local_today = timezone.localtime(now, site.zone).date()
        for day in (local_today, local_today + dt.timedelta(days=1)):
            due = local_datetime(day, rules.coordinator_digest_hour_local, site.zone)
            if due < now - dt.timedelta(hours=1):
                continue
            rows.append(
                Reminder(
                    key=f"digest:{site.pk}:{day.isoformat()}",
                    kind=ReminderKind.COORDINATOR_DIGEST,
                    site=site,
                    due_at=due,
                    rules_fingerprint=rules.fingerprint,
                )
            )
    return len(Reminder.objects.bulk_create(rows, ignore_conflicts=True))


@transaction.atomic
def reminders_retime(*, now: dt.datetime | None = None) -> int:
    """After a rule change: re-time every pending invitation reminder made under older rules,
    cancel the ones the new rules no longer have, and add the new ones. Returns rows changed."""
    now = now or timezone.now()
    fingerprint = _rules().fingerprint
    stale = (
        Reminder.objects.select_for_update(skip_locked=True)
        .filter(state=ReminderState.PENDING, invitation__isnull=False)
        .exclude(rules_fingerprint=fingerprint)
        .exclude(sequence__gte=100)  # a staff resend keeps its time
        .select_related("invitation__participant")
    )
    changed = 0
    by_invitation: dict[int, list[Reminder]] = {}
    for row in stale:
        by_invitation.setdefault(row.invitation_id, []).append(row)
    for rows in by_invitation.values():
        invitation = rows[0].invitation
        wanted = {(kind, sequence): due for kind, sequence, due in invitation_schedule(invitation)}
        for row in rows:
            due = wanted.pop((row.kind, row.sequence), None)
            if due is None or due < now:
                row.state, row.cancelled_reason = ReminderState.CANCELLED, "no longer in the reminder rules"
            else:
                row.due_at = due
            row.rules_fingerprint = fingerprint
            row.save(update_fields=["state", "cancelled_reason", "due_at", "rules_fingerprint"])
            changed += 1
        sent_keys = set(Reminder.objects.filter(invitation=invitation).values_list("key", flat=True))
        for (kind, sequence), due in wanted.items():
            key = _invitation_key(invitation.pk, kind, sequence)
            if key not in sent_keys and due >= now:
                try:
                    with transaction.atomic():
                        Reminder.objects.create(
                            key=key,
                            kind=kind,
                            invitation=invitation,
                            visit_id=invitation.visit_id,
                            site_id=invitation.participant.site_id,
                            sequence=sequence,
                            due_at=due,
                            rules_fingerprint=fingerprint,
                        )
                    changed += 1
                except IntegrityError:
                    pass
    return changed


# --- The tick ------------------------------------------------------------------------------------


def _why_not(row: Reminder, now: dt.datetime, contactable_ids: set[int]) -> str | None:
    """Why a due reminder must not go out any more (None: send it)."""
    if row.invitation_id:
        invitation = row.invitation
        if invitation.status not in OPEN_STATUSES:
            return str(invitation.status)
        if now > invitation.valid_until:
            return "expired"
        participant = invitation.participant
    elif row.visit_id:
        if row.visit.status != VisitStatus.PLANNED:
            return "visit no longer planned"
        participant = row.visit.participant
    else:
        return None  # digests go to staff
    if participant.pk not in contactable_ids:
        return "participant may not be contacted"
    if not participant.email:
        return "no e-mail address"
    return None


def _deliver(row: Reminder, now: dt.datetime) -> None:
    if row.kind == ReminderKind.COORDINATOR_DIGEST:
        emails.coordinator_digest_send(site=row.site, now=now)
        return
    if row.kind == ReminderKind.VISIT_REMINDER:
        emails.visit_reminder_send(visit=row.visit)
        return
    invitation = row.invitation
    token = link_create(invitation)
    emails.invitation_send(invitation=invitation, token=token, kind=row.kind)
    if invitation.status == InvitationStatus.SCHEDULED or invitation.sent_at is None:
        Invitation.objects.filter(pk=invitation.pk).update(
            sent_at=invitation.sent_at or now,
            status=InvitationStatus.SENT
            if invitation.status == InvitationStatus.SCHEDULED
            else invitation.status,
        )


def reminders_send_due(
    *, now: dt.datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = 40
) -> int:
    """Send every due reminder once. Safe to run in several workers at the same moment: each
    batch is claimed with SKIP LOCKED and marked sent in the transaction that sent it."""
    now = now or timezone.now()
    sent = 0
    for _batch in range(max_batches):
        with transaction.atomic():
            batch = list(
                Reminder.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(state=ReminderState.PENDING, due_at__lte=now)
                .select_related("invitation__participant__site", "visit__participant__site", "site")
                .order_by("due_at", "id")[:batch_size]
            )
            if not batch:
                break
            # Who may still be contacted: one query per batch, not one per reminder.
            participant_ids = {
                r.invitation.participant_id if r.invitation_id else r.visit.participant_id
                for r in batch
                if r.invitation_id or r.visit_id
            }
            contactable_ids = set(
                Participant.objects.contactable().filter(pk__in=participant_ids).values_list("pk", flat=True)
            )
            for row in batch:
                reason = _why_not(row, now, contactable_ids)
                if reason:
                    row.state, row.cancelled_reason = ReminderState.CANCELLED, reason[:100]
                    row.save(update_fields=["state", "cancelled_reason"])
                    continue
                try:
                    with transaction.atomic():
                        _deliver(row, now)
                except (SMTPException, OSError) as exc:
                    row.attempts += 1
                    row.last_error = str(exc)[:300]
                    if row.attempts >= MAX_ATTEMPTS:
                        row.state = ReminderState.FAILED
                    else:
                        row.due_at = now + dt.timedelta(minutes=5 * 2**row.attempts)
                    row.save(update_fields=["attempts", "last_error", "state", "due_at"])
                    continue
                row.state, row.sent_at = ReminderState.SENT, now
                row.save(update_fields=["state", "sent_at"])
                sent += 1
    return sent


def reminders_cancel_for_participant(*, participant_id: int, reason: str) -> int:
    """Stop every pending e-mail to a participant (withdrawal, end of study)."""
    return (
        Reminder.objects.filter(state=ReminderState.PENDING)
        .filter(Q(invitation__participant_id=participant_id) | Q(visit__participant_id=participant_id))
        .update(state=ReminderState.CANCELLED, cancelled_reason=reason[:100])
    )
