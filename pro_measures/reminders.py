"""Reminders that are sent exactly once (DOMAIN.md s.7: #1, #2, #8).

Every e-mail the study owes is a Reminder row with a unique key, created ahead of time from the
protocol's ReminderRules. The beat tick only counts the due rows and enqueues one batch task per
BATCH_SIZE of them; each batch task claims due rows with SELECT ... FOR UPDATE SKIP LOCKED,
checks they are still wanted (questionnaire open, participant contactable), and sends each one
under a PostgreSQL advisory lock, committing pending -> sending -> sent around the SMTP
conversation (one statement per e-mail) - so a killed worker, a second worker or a flushed Redis
neither loses a reminder nor sends one twice, except in the one window `reminders_send_due`
describes. Completing, revoking or withdrawing cancels pending rows at once; the tick's check
catches anything else. Changing the rules re-times rows not yet sent (`reminders_retime`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from email.utils import parseaddr
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from participants.models import Participant, Visit, VisitStatus
from pro_measures import emails
from pro_measures.invitations import link_token_generate, local_datetime
from pro_measures.models import (
    OPEN_STATUSES,
    Invitation,
    InvitationLink,
    InvitationStatus,
    Reminder,
    ReminderKind,
    ReminderState,
)
from trial.models import Site
from trial.protocol import PROTOCOL

MAX_ATTEMPTS = 5
# Small claims, so a second worker shares a long run; a claim's e-mails share one SMTP connection.
BATCH_SIZE = 10
# The first key of the two-key advisory locks that mark a reminder being sent ("REMD").
SENDING_LOCK_NAMESPACE = 0x52454D44


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


def message_id_for(row: Reminder) -> str:
    """The reminder's own Message-ID (RFC 5322 3.6.4): fixed when the row is first claimed, the
    same on every re-send, different for every reminder and installation."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "sts-edc.invalid"
    digest = hashlib.sha256(f"{settings.SITE_URL}|{row.key}".encode()).hexdigest()[:20]
    return f"<reminder.{row.pk}.{digest}@{domain}>"


def _deliver(row: Reminder, now: dt.datetime, token: str | None, mail: BaseEmailBackend) -> None:
    mail.open()  # no-op while the batch's connection is open; reconnects after a failure
    if row.kind == ReminderKind.COORDINATOR_DIGEST:
        emails.coordinator_digest_send(site=row.site, now=now, message_id=row.message_id, connection=mail)
    elif row.kind == ReminderKind.VISIT_REMINDER:
        emails.visit_reminder_send(visit=row.visit, message_id=row.message_id, connection=mail)
    else:
        emails.invitation_send(
            invitation=row.invitation, token=token, kind=row.kind, message_id=row.message_id, connection=mail
        )


def _advisory_lock_ids(ids: list[int]) -> set[int]:
    """Take the session-level sending lock of each reminder that no live worker holds; return the
    ids taken. PostgreSQL drops a session's advisory locks when its connection ends, so the lock of
    a killed worker is gone as soon as the server notices the dead connection."""
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM unnest(%s::bigint[]) AS id WHERE pg_try_advisory_lock(%s, id::integer)",
            [ids, SENDING_LOCK_NAMESPACE],
        )
        return {row[0] for row in cursor.fetchall()}


def _advisory_unlock(ids: list[int]) -> None:
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_unlock(%s, id::integer) FROM unnest(%s::bigint[]) AS id",
                [SENDING_LOCK_NAMESPACE, ids],
            )


def _being_sent() -> RawSQL:
    """Ids of the reminders live workers hold the sending lock of (in this database), as a
    subquery of the claim."""
    return RawSQL(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s"
        " AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [SENDING_LOCK_NAMESPACE],
    )


def _states_to_send(now: dt.datetime) -> set[str]:
    """One look, outside any transaction: is there a pending row due by `now`, a 'sending' row (a
    lost worker's, or one a live worker is sending), both or neither. Two arms of one statement,
    so each state's partial index answers (an OR would scan the table): the same cost over 100 or
    100,000 pending rows not yet due."""
    due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).values_list("state")[:1]
    sending = Reminder.objects.filter(state=ReminderState.SENDING).values_list("state")[:1]
    return {state for (state,) in due.union(sending, all=True)}


def _load_recipients(batch: list[Reminder], sites: dict[int, Site]) -> set[int]:
    """The claimed rows' invitations and visits with their participants (a query each, none per
    row), and their sites from the tick's own copy (read when a batch first needs one). Returns
    the ids of those participants the study may still contact."""
    may_contact = Exists(Participant.objects.contactable().filter(pk=OuterRef("participant_id")))
    invitation_ids = {row.invitation_id for row in batch if row.invitation_id}
    visit_ids = {row.visit_id for row in batch if row.visit_id and not row.invitation_id}
    invitations = (
        Invitation.objects.select_related("participant")
        .annotate(may_contact=may_contact)
        .in_bulk(invitation_ids)
        if invitation_ids
        else {}
    )
    visits = (
        Visit.objects.select_related("participant").annotate(may_contact=may_contact).in_bulk(visit_ids)
        if visit_ids
        else {}
    )
    for row in batch:
        if row.invitation_id:
            row.invitation = invitations[row.invitation_id]
        elif row.visit_id:
            row.visit = visits[row.visit_id]
    participants = [_participant(row) for row in batch if row.invitation_id or row.visit_id]
    missing = {p.site_id for p in participants} | {row.site_id for row in batch if _is_digest(row)}
    missing -= sites.keys()
    if missing:
        sites.update(Site.objects.in_bulk(missing))
    for participant in participants:
        participant.site = sites[participant.site_id]
    for row in batch:
        if _is_digest(row):
            row.site = sites[row.site_id]
    return {item.participant_id for item in [*invitations.values(), *visits.values()] if item.may_contact}


def _is_digest(row: Reminder) -> bool:
    return not row.invitation_id and not row.visit_id


def _participant(row: Reminder) -> Participant:
    return row.invitation.participant if row.invitation_id else row.visit.participant


@transaction.atomic
def _claim(
    now: dt.datetime, batch_size: int, sites: dict[int, Site], *, lost: bool = True
) -> tuple[list[Reminder], bool]:
    """Claim up to `batch_size` reminders for this worker: due pending rows, and (if `lost`: the
    tick saw some) 'sending' rows whose worker is gone (no one holds their sending lock). Rows that
    must not go out any more are cancelled here. Returns the rows to send, with this session
    holding their sending locks, and whether there was anything to look at (all cancelled is not
    the end of the due rows)."""
    # Skip rows another live worker is sending, so the batch is work this worker can do. One table
    # only: the rows' invitations and participants are read once the batch is known.
    claimable = (
        Reminder.objects.select_for_update(skip_locked=True)
        .exclude(pk__in=_being_sent())
        .order_by("due_at", "id")
    )
    # A lost worker's 'sending' rows first, then pending rows due now (each by its own index).
    candidates = list(claimable.filter(state=ReminderState.SENDING)[:batch_size]) if lost else []
    candidates += claimable.filter(state=ReminderState.PENDING, due_at__lte=now)[
        : batch_size - len(candidates)
    ]
    mine = _advisory_lock_ids([row.pk for row in candidates])
    batch = [row for row in candidates if row.pk in mine]
    if not batch:
        return [], False
    contactable_ids = _load_recipients(batch, sites)
    claimed, released = [], []
    for row in batch:
        reason = _why_not(row, now, contactable_ids)
        if reason:
            row.state, row.cancelled_reason = ReminderState.CANCELLED, reason[:100]
            row.save(update_fields=["state", "cancelled_reason"])
            released.append(row.pk)
            continue
        if row.state == ReminderState.SENDING:
            # Its worker died between claiming it and recording the outcome: the mail server may
            # or may not have accepted it. Send it again, with the same Message-ID.
            row.attempts += 1
            row.last_error = "worker lost while sending; sent again with the same Message-ID"
            if row.attempts >= MAX_ATTEMPTS:  # a message that kills its worker every time
                row.state = ReminderState.FAILED
                row.save(update_fields=["attempts", "last_error", "state"])
                released.append(row.pk)
                continue
            row.save(update_fields=["attempts", "last_error"])
        claimed.append(row)
    _advisory_unlock(released)
    return claimed, True


# One statement, so one round trip and one commit (autocommit) per e-mail: the previous e-mail
# sent (and its invitation e-mailed), this one 'sending' with its Message-ID if still wanted (a
# completion or withdrawal since the claim has cancelled it), and its link if it carries one.
# Returns 1 if this one is to be sent. Either id may be NULL (the first / after the last e-mail).
_NEXT_EMAIL_SQL = """
WITH sent AS (
    UPDATE {reminder} SET state = %(sent)s, sent_at = %(now)s
    WHERE id = %(sent_id)s AND state = %(sending)s
    RETURNING invitation_id
), emailed AS (
    UPDATE {invitation}
    SET sent_at = COALESCE(sent_at, %(now)s),
        status = CASE WHEN status = %(scheduled)s THEN %(invitation_sent)s ELSE status END
    WHERE id IN (SELECT invitation_id FROM sent) AND (status = %(scheduled)s OR sent_at IS NULL)
), marked AS (
    UPDATE {reminder} SET state = %(sending)s, sending_since = %(since)s, message_id = %(message_id)s
    WHERE id = %(sending_id)s AND state IN (%(pending)s, %(sending)s)
    RETURNING invitation_id
), linked AS (
    INSERT INTO {link} (invitation_id, token_hash, created_at)
    SELECT invitation_id, %(token_hash)s, %(since)s FROM marked WHERE %(token_hash)s IS NOT NULL
)
SELECT count(*) FROM marked
"""


def _next_email(
    *, sent: Reminder | None, sending: Reminder | None, now: dt.datetime, link_hash: str | None = None
) -> bool:
    """Record `sent` as sent (the mail server accepted it) and mark `sending` 'sending' (with its
    Message-ID and, for a questionnaire e-mail, the link with `link_hash`) in one statement: its
    commit comes before the mail server sees `sending`. Returns whether `sending` is still wanted."""
    since = timezone.now()
    if sending is not None:
        sending.message_id = sending.message_id or message_id_for(sending)
    sql = _NEXT_EMAIL_SQL.format(
        reminder=connection.ops.quote_name(Reminder._meta.db_table),
        invitation=connection.ops.quote_name(Invitation._meta.db_table),
        link=connection.ops.quote_name(InvitationLink._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "sent": ReminderState.SENT.value,
                "sending": ReminderState.SENDING.value,
                "pending": ReminderState.PENDING.value,
                "scheduled": InvitationStatus.SCHEDULED.value,
                "invitation_sent": InvitationStatus.SENT.value,
                "now": now,
                "since": since,
                "sent_id": sent.pk if sent else None,
                "sending_id": sending.pk if sending else None,
                "message_id": sending.message_id if sending else "",
                "token_hash": link_hash,
            },
        )
        marked = cursor.fetchone()[0] == 1
    if sent is not None:
        sent.state, sent.sent_at = ReminderState.SENT, now
    if marked:
        sending.state, sending.sending_since = ReminderState.SENDING, since
    return marked


def _record_failure(row: Reminder, now: dt.datetime, exc: Exception) -> None:
    row.attempts += 1
    row.last_error = str(exc)[:300]
    if row.attempts >= MAX_ATTEMPTS:
        row.state = ReminderState.FAILED
    else:
        row.state = ReminderState.PENDING
        row.due_at = now + dt.timedelta(minutes=5 * 2**row.attempts)
    row.save(update_fields=["attempts", "last_error", "state", "due_at"])


def _send_batch(batch: list[Reminder], now: dt.datetime) -> int:
    """Send a claimed batch (this session holds the rows' sending locks) over one mail connection.
    Returns the number sent.

    Before each e-mail one statement (`_next_email`) commits the previous e-mail as sent (accepted
    by the server just before) and this one as 'sending' with its Message-ID and the link that
    only this e-mail carries (stored hashed; a re-send needs a new one). So nothing reaches the
    mail server between one e-mail's acceptance and its 'sent' commit, and a lost worker leaves
    at most one row 'sending'."""
    sent = 0
    accepted: Reminder | None = None  # accepted by the mail server, 'sent' not yet committed
    mail = get_connection()
    try:
        for row in batch:
            token, link_hash = link_token_generate() if row.invitation_id else (None, None)
            wanted = _next_email(sent=accepted, sending=row, now=now, link_hash=link_hash)
            if accepted is not None:
                sent, accepted = sent + 1, None
            if not wanted:
                continue
            try:
                _deliver(row, now, token, mail)
            except (SMTPException, OSError) as exc:
                _record_failure(row, now, exc)
                _close_quietly(mail)  # a broken conversation is not reused for the next e-mail
                continue
            accepted = row
        if accepted is not None:
            _next_email(sent=accepted, sending=None, now=now)
            sent += 1
    finally:
        _close_quietly(mail)
    return sent


def _close_quietly(mail: BaseEmailBackend) -> None:
    try:
        mail.close()
    except (SMTPException, OSError):
        pass  # the server is gone already; the next e-mail opens a new connection


def reminders_send_due(
    *, now: dt.datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = 40
) -> int:
    """Send every due reminder once, batch after batch in this process (the management command,
    tests, the benchmark); safe in several workers at the same moment. Returns the number sent.
    The beat tick does not call this: it enqueues batch tasks (`reminders_dispatch_due`), each
    of which sends one batch the same way (`reminders_send_batch`).

    Each reminder goes pending -> sending -> sent around its SMTP conversation, while this
    database session holds a PostgreSQL advisory lock on it; its 'sending' mark (with its
    Message-ID) is committed before the mail server sees it, and its 'sent' mark in the next
    transaction, before anything else reaches the mail server (`_send_batch`):
    - a second worker skips rows that are row-locked (being claimed) or advisory-locked (being
      sent), so two workers never send the same reminder;
    - a worker killed at any point leaves its rows 'pending' (never handed to the mail server)
      or at most the one it was sending 'sending'; its connection ends, PostgreSQL drops its
      advisory locks, and the next tick sends those rows again with the same Message-ID;
    - the broker holds nothing that matters: a lost, duplicated or extra tick or batch task only
      sends what the table says is due.
    The window that remains: a worker lost after the mail server accepted a message and before
    its 'sent' commit (one short transaction, no other e-mail in between) makes that one reminder
    go out twice, with the same Message-ID (at least once, never lost). SMTP cannot close it: the
    server's acceptance and our commit are two systems (RFC 1047). Likewise a connection that
    breaks after the end of DATA but before the server's reply is retried later as a failure.

    With nothing due this is one indexed look (`_states_to_send`), whatever the number of
    pending rows not yet due.
    """
    now = now or timezone.now()
    states = _states_to_send(now)
    if not states:
        return 0
    # A worker lost during this run leaves its 'sending' row to the next tick, a minute later.
    lost = ReminderState.SENDING in states
    sent = 0
    sites: dict[int, Site] = {}  # read once per run, when the first batch needs them
    for _batch in range(max_batches):
        batch_sent = _claim_and_send(now, batch_size, sites, lost=lost)
        if batch_sent is None:
            break
        sent += batch_sent
    return sent


def reminders_send_batch(
    *, now: dt.datetime | None = None, lost: bool = True, batch_size: int = BATCH_SIZE
) -> int:
    """Claim and send ONE batch of due reminders (the body of a `reminders_send_batch` task), by
    the protocol `reminders_send_due` describes; `lost`: also claim lost workers' 'sending' rows.
    Idempotent: a duplicate or extra task finds nothing left to claim and returns 0."""
    return _claim_and_send(now or timezone.now(), batch_size, {}, lost=lost) or 0


def _claim_and_send(now: dt.datetime, batch_size: int, sites: dict[int, Site], *, lost: bool) -> int | None:
    """One claim and its sending: the number sent, or None if there was nothing to claim."""
    batch, found = _claim(now, batch_size, sites, lost=lost)
    if not found:
        return None
    try:
        return _send_batch(batch, now)
    finally:
        # One call per batch, after every 'sent' commit of the batch.
        _advisory_unlock([row.pk for row in batch])


# At most this many batch tasks per tick (400 e-mails a minute); a larger burst spreads over the
# next ticks, as the rows stay due.
DISPATCH_MAX_BATCHES = 40


def _due_counts(now: dt.datetime, cap: int) -> Counter:
    """One look, outside any transaction, like `_states_to_send`: how many pending rows are due by
    `now` and how many are 'sending' (a lost worker's, or one a live worker is sending), each up to
    `cap`. Two arms of one statement, each answered by its state's partial index."""
    due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).values_list("state")[:cap]
    sending = Reminder.objects.filter(state=ReminderState.SENDING).values_list("state")[:cap]
    return Counter(state for (state,) in due.union(sending, all=True))


def reminders_dispatch_due(
    *,
    now: dt.datetime | None = None,
    queue: str | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = DISPATCH_MAX_BATCHES,
) -> list[str]:
    """The minute tick: count the reminders to send (one statement) and enqueue one
    `reminders_send_batch` task per `batch_size` of them (up to `max_batches`) on `queue` (the
    default queue if None), so idle workers share a burst. Sends nothing itself. Returns the ids
    of the tasks enqueued.

    The count is a hint, not a claim: the batch tasks claim with SKIP LOCKED, so a row counted
    here and sent by an earlier tick's task makes one task find nothing (it returns 0), and a
    task lost with Redis is replaced by the next tick's count."""
    from pro_measures.tasks import reminders_send_batch as send_batch_task

    counts = _due_counts(now or timezone.now(), batch_size * max_batches)
    batches = min(max_batches, -(-sum(counts.values()) // batch_size))
    lost = ReminderState.SENDING in counts
    return [send_batch_task.apply_async(kwargs={"lost": lost}, queue=queue).id for _batch in range(batches)]


def reminders_cancel_for_participant(*, participant_id: int, reason: str) -> int:
    """Stop every pending e-mail to a participant (withdrawal, end of study)."""
    return (
        Reminder.objects.filter(state=ReminderState.PENDING)
        .filter(Q(invitation__participant_id=participant_id) | Q(visit__participant_id=participant_id))
        .update(state=ReminderState.CANCELLED, cancelled_reason=reason[:100])
    )
