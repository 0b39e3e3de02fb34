"""Invitations, links and reminders: sent exactly once, stopped at once, re-timed by a rule change."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
import uuid
from smtplib import SMTPDataError

import pytest
import redis
import time_machine
from django.conf import settings
from django.core import mail
from django.core.mail.backends import locmem
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from pro_measures import invitations, reminders, tasks
from pro_measures.invitations import LinkProblem, invitation_for_token, token_hash
from pro_measures.models import Invitation, InvitationLink, InvitationStatus, Reminder, ReminderState
from trial import protocol
from trial.celery import app

pytestmark = pytest.mark.django_db

UTC = dt.UTC


def plan(participant):
    return invitations.invitations_plan_for_participant(participant_id=participant.pk)


def link_in(message) -> str:
    return re.search(r"https?://\S+/q/([A-Za-z0-9_-]+)/", message.body).group(1)


def test_baseline_questionnaires_are_planned_with_invitation_and_reminders(participant):
    assert plan(participant) == len(protocol.PROTOCOL.visit("W0").instruments)
    assert plan(participant) == 0  # idempotent
    haq = Invitation.objects.get(instrument_code="haq_di")
    # Window opens today (3 Nov) 09:00 New York = 14:00 UTC; closes 10 Nov 23:59:59 New York.
    assert haq.opens_at == dt.datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    assert haq.valid_until.astimezone(participant.zone).date() == dt.date(2026, 11, 10)
    due = {(r.kind, r.sequence): r.due_at for r in haq.reminders.all()}
    assert due[("invitation", 0)] == haq.opens_at
    assert due[("reminder", 1)] == dt.datetime(2026, 11, 6, 14, 0, tzinfo=UTC)
    assert due[("reminder", 2)] == dt.datetime(2026, 11, 10, 14, 0, tzinfo=UTC)  # day 7
    # Last call the day before the window closes (9 Nov), also at 09:00 New York.
    assert due[("last_call", 0)] == dt.datetime(2026, 11, 9, 14, 0, tzinfo=UTC)


def test_sends_happen_at_9am_local_even_across_daylight_saving(participant):
    plan(participant)
    haq = Invitation.objects.get(instrument_code="haq_di")
    for row in haq.reminders.all():
        assert row.due_at.astimezone(participant.zone).hour == 9


def test_each_reminder_is_sent_once_and_carries_a_working_link(participant):
    plan(participant)
    sent = reminders.reminders_send_due(now=dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    assert sent == len(mail.outbox) == len(protocol.PROTOCOL.visit("W0").instruments)
    assert reminders.reminders_send_due(now=dt.datetime(2026, 11, 3, 15, 5, tzinfo=UTC)) == 0
    message = mail.outbox[0]
    assert message.to == ["jane@example.org"]
    # The e-mail names the study, never the diagnosis or what the questionnaire is about.
    for word in ("sclerosis", "dermatomyositis", "myopathy", "pain", "disability", "haq"):
        assert word not in message.body.lower().replace(settings.STUDY_NAME.lower(), "")
    token = link_in(message)
    assert len(token) >= 43  # 256 bits, URL-safe base64
    assert InvitationLink.objects.filter(token_hash=token_hash(token)).exists()
    assert not InvitationLink.objects.filter(token_hash=token).exists()  # stored only hashed
    invitation = invitation_for_token(token, now=dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    assert invitation.status == InvitationStatus.SENT


def test_the_url_holds_nothing_but_the_random_token(participant):
    plan(participant)
    reminders.reminders_send_due(now=dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC))
    urls = re.findall(r"https?://\S+", mail.outbox[0].body)
    assert len(urls) == 1
    path = urls[0].split("://", 1)[1].split("/", 1)[1]
    # No name, id, date or query string: "q/" and 43 characters of URL-safe base64 (256 bits).
    assert re.fullmatch(r"q/[A-Za-z0-9_-]{43}/", path), path


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_the_same_moment_send_each_reminder_once(participant):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    due_count = Reminder.objects.filter(due_at__lte=now, state="pending").count()
    assert due_count >= 2
    results, barrier = [], threading.Barrier(2)

    def worker():
        from django.db import connections

        barrier.wait()
        try:
            results.append(reminders.reminders_send_due(now=now, batch_size=1))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results) == due_count == len(mail.outbox)
    assert all(r > 0 for r in results)  # both workers really took part
    assert not Reminder.objects.filter(due_at__lte=now, state="pending").exists()


def test_completion_stops_pending_reminders_at_once(participant):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    reminders.reminders_send_due(now=now)
    pain = Invitation.objects.get(instrument_code="pain_nrs")
    invitations.response_save_answers(invitation=pain, answers={"pain": 4}, now=now)
    invitations.response_submit(invitation=pain, now=now)
    assert not pain.reminders.filter(state=ReminderState.PENDING).exists()
    assert set(pain.reminders.exclude(kind="invitation").values_list("state", "cancelled_reason")) == {
        (ReminderState.CANCELLED, "completed")
    }
    outbox_before = len(mail.outbox)
    # 6 Nov: the first reminder is due for every questionnaire still open - not for pain.
    sent = reminders.reminders_send_due(now=dt.datetime(2026, 11, 6, 15, 0, tzinfo=UTC))
    still_open = Invitation.objects.exclude(pk=pain.pk).count()
    assert sent == still_open == len(mail.outbox) - outbox_before
    assert pain.links.count() == 1  # only the first invitation e-mail ever carried a pain link
    assert pain.response.scores.get(name="pain_nrs").value == 4


def test_withdrawal_stops_every_reminder(participant, coordinator, consented):
    from participants import services

    plan(participant)
    services.consent_withdraw(
        actor=coordinator,
        screening=consented,
        withdrawn_on=dt.date(2026, 11, 3),
        scope="no_contact",
        reason="moving",
    )
    assert reminders.reminders_send_due(now=dt.datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == 0
    assert mail.outbox == []
    assert not Reminder.objects.filter(
        state=ReminderState.PENDING, due_at__lte=dt.datetime(2026, 11, 30, 15, tzinfo=UTC)
    ).exists()


def test_a_rule_change_retimes_unsent_reminders(participant, monkeypatch):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    reminders.reminders_send_due(now=now)  # invitations go out under the old rules
    new_rules = dataclasses.replace(
        protocol.PROTOCOL.reminders, reminder_days_after_invitation=(2,), send_hour_local=10
    )
    monkeypatch.setattr(protocol, "PROTOCOL", dataclasses.replace(protocol.PROTOCOL, reminders=new_rules))
    monkeypatch.setattr(reminders, "PROTOCOL", protocol.PROTOCOL)
    assert reminders.reminders_retime(now=now) > 0
    haq = Invitation.objects.get(instrument_code="haq_di")
    pending = {(r.kind, r.sequence): r.due_at for r in haq.reminders.filter(state=ReminderState.PENDING)}
    assert pending[("reminder", 1)] == dt.datetime(2026, 11, 5, 15, 0, tzinfo=UTC)  # day 2, 10:00 New York
    assert ("reminder", 2) not in pending
    assert haq.reminders.get(kind="invitation").state == ReminderState.SENT  # sent rows keep their history


@pytest.mark.parametrize("token", ["", "x", "A" * 43, "A" * 500, "../../etc/passwd", "<script>"])
def test_unknown_or_malformed_tokens_are_refused_alike(token):
    with pytest.raises(LinkProblem) as problem:
        invitation_for_token(token)
    assert problem.value.kind == "unknown" and problem.value.invitation is None


def test_used_expired_and_revoked_links(participant, coordinator):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    reminders.reminders_send_due(now=now)
    tokens = {m.subject + str(i): link_in(m) for i, m in enumerate(mail.outbox)}
    by_code = {}
    for token in tokens.values():
        by_code[invitation_for_token(token, now=now).instrument_code] = token
    pain = Invitation.objects.get(instrument_code="pain_nrs")
    invitations.response_save_answers(invitation=pain, answers={"pain": 2}, now=now)
    invitations.response_submit(invitation=pain, now=now)
    with pytest.raises(LinkProblem, match="used"):
        invitation_for_token(by_code["pain_nrs"], now=now)
    invitations.invitation_revoke(
        actor=coordinator, invitation=Invitation.objects.get(instrument_code="ptga"), reason="sent by mistake"
    )
    with pytest.raises(LinkProblem, match="revoked"):
        invitation_for_token(by_code["ptga"], now=now)
    with pytest.raises(LinkProblem, match="expired"):
        invitation_for_token(by_code["haq_di"], now=dt.datetime(2026, 11, 12, 15, 0, tzinfo=UTC))


def test_answers_are_saved_as_the_patient_goes_and_resume(participant):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    haq = Invitation.objects.get(instrument_code="haq_di")
    invitations.response_save_answers(invitation=haq, answers={"dressing_1": 1, "dressing_2": 0}, now=now)
    invitations.response_save_answers(invitation=haq, answers={"arising_1": 2}, now=now)
    haq.refresh_from_db()
    assert haq.status == InvitationStatus.IN_PROGRESS
    assert haq.response.answers == {"dressing_1": 1, "dressing_2": 0, "arising_1": 2}
    with pytest.raises(Exception, match="not answered"):
        invitations.response_submit(invitation=haq, now=now)


def test_saved_answers_are_audited_with_the_invitation_as_actor(participant):
    from pro_measures.models import Response
    from trial.audit import event_model_for

    plan(participant)
    pain = Invitation.objects.get(instrument_code="pain_nrs")
    with time_machine.travel(dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)):
        invitations.response_save_answers(invitation=pain, answers={"pain": 6})
    events = event_model_for(Response).objects.filter(pgh_obj_id=pain.response.pk)
    assert events.exists()
    for event in events:
        assert event.pgh_context["actor"] == f"patient via invitation {pain.pk}"
        assert event.pgh_context["user"] is None


# --- The tick's cost ---------------------------------------------------------------------------


class RecordingBackend(locmem.EmailBackend):
    """The in-memory backend, recording the connections opened and refusing the n-th message
    (1-based) of the run as a mail server would (451)."""

    opened = 0
    sends = 0
    refuse: frozenset[int] = frozenset()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.is_open = False

    def open(self):
        if self.is_open:
            return False
        self.is_open = True
        RecordingBackend.opened += 1
        return True

    def close(self):
        self.is_open = False

    def send_messages(self, messages):
        assert self.is_open, "the tick sends over the connection it opened"
        RecordingBackend.sends += 1
        if RecordingBackend.sends in RecordingBackend.refuse:
            raise SMTPDataError(451, b"4.3.0 try again later")
        return super().send_messages(messages)


@pytest.fixture
def recording_backend(settings):
    settings.EMAIL_BACKEND = f"{__name__}.RecordingBackend"
    RecordingBackend.opened, RecordingBackend.sends, RecordingBackend.refuse = 0, 0, frozenset()
    return RecordingBackend


def test_a_batch_of_reminders_goes_out_over_one_mail_connection(participant, recording_backend):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).count()
    assert due == 6
    assert reminders.reminders_send_due(now=now, batch_size=3) == due == len(mail.outbox)
    assert recording_backend.opened == 2  # one per claim batch, not one per e-mail


def test_a_refused_e_mail_is_retried_later_and_the_rest_of_the_batch_still_goes(
    participant, recording_backend
):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    recording_backend.refuse = frozenset({2})
    assert reminders.reminders_send_due(now=now) == 5
    refused = Reminder.objects.get(attempts=1)
    assert refused.state == ReminderState.PENDING and "try again later" in refused.last_error
    assert refused.due_at == now + dt.timedelta(minutes=10)
    assert recording_backend.opened == 2  # the conversation that failed was not reused
    assert reminders.reminders_send_due(now=now + dt.timedelta(minutes=11)) == 1
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == len(set(message_ids)) == 6
    assert refused.message_id in message_ids


def test_a_tick_with_nothing_due_is_one_statement_however_many_rows_wait(
    participant, django_assert_num_queries
):
    plan(participant)
    before_any_due = dt.datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    with django_assert_num_queries(1):
        assert reminders.reminders_send_due(now=before_any_due) == 0
    invitation = Invitation.objects.first()
    Reminder.objects.bulk_create(
        Reminder(
            key=f"later:{n}",
            kind="reminder",
            invitation=invitation,
            visit_id=invitation.visit_id,
            site_id=participant.site_id,
            sequence=100 + n,
            due_at=before_any_due + dt.timedelta(days=1, minutes=n),
            rules_fingerprint="x",
        )
        for n in range(500)
    )
    with django_assert_num_queries(1):
        assert reminders.reminders_send_due(now=before_any_due) == 0


def test_each_e_mail_costs_one_statement_beyond_its_batch(participant):
    plan(participant)
    now = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
    due = list(Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).order_by("pk"))

    def statements_to_send(count: int) -> int:
        with transaction.atomic():
            Reminder.objects.filter(pk__in=[r.pk for r in due[count:]]).update(
                due_at=now + dt.timedelta(days=1)
            )
            with CaptureQueriesContext(connection) as queries:
                assert reminders.reminders_send_due(now=now) == count
            transaction.set_rollback(True)
        return len(queries)

    assert statements_to_send(6) - statements_to_send(3) == 3


# --- The tick dispatches, batch tasks send -----------------------------------------------------


def add_due(participant, count: int, now: dt.datetime) -> None:
    """`count` more reminders of an open questionnaire, due before `now`."""
    invitation = Invitation.objects.first()
    Reminder.objects.bulk_create(
        Reminder(
            key=f"extra:{n}",
            kind="reminder",
            invitation=invitation,
            visit_id=invitation.visit_id,
            site_id=participant.site_id,
            sequence=100 + n,
            due_at=now - dt.timedelta(minutes=1),
            rules_fingerprint="x",
        )
        for n in range(count)
    )


@pytest.fixture
def own_queue():
    """A queue of the test's own on the test Redis (the real broker), deleted afterwards with its
    kombu bindings; yields it and a function returning the names of the tasks waiting in it."""
    name = f"test-dispatch-{uuid.uuid4().hex[:12]}"
    store = redis.Redis.from_url(settings.CELERY_BROKER_URL)

    def waiting() -> list[str]:
        return [json.loads(body)["headers"]["task"] for body in store.lrange(name, 0, -1)]

    try:
        yield name, waiting
    finally:
        with app.connection_for_write() as broker:
            # Declared on this channel first: kombu deletes a queue (and its bindings) it knows.
            queue = app.amqp.queues[name](broker.default_channel)
            queue.declare()
            queue.delete()
        assert store.keys(f"*{name}*") == []


def test_the_tick_enqueues_one_batch_task_per_batch_of_due_reminders(
    participant, own_queue, django_assert_num_queries
):
    plan(participant)
    now = timezone.now()
    add_due(participant, 2 * reminders.BATCH_SIZE - 6 + 1, now)  # 6 planned ones are due too
    due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).count()
    assert due == 2 * reminders.BATCH_SIZE + 1
    queue, waiting = own_queue
    with django_assert_num_queries(1):
        task_ids = reminders.reminders_dispatch_due(now=now, queue=queue)
    assert len(task_ids) == 3 == len(set(task_ids))
    assert waiting() == ["pro_measures.tasks.reminders_send_batch"] * 3
    assert len(mail.outbox) == 0  # the tick sends nothing itself
    assert not Reminder.objects.exclude(state=ReminderState.PENDING).exists()


def test_the_tick_enqueues_at_most_its_cap_and_nothing_when_nothing_is_due(
    participant, own_queue, django_assert_num_queries
):
    plan(participant)
    queue, waiting = own_queue
    before_any_due = dt.datetime(2026, 11, 3, 13, 0, tzinfo=UTC)
    with django_assert_num_queries(1):
        assert reminders.reminders_dispatch_due(now=before_any_due, queue=queue) == []
    assert waiting() == []
    now = timezone.now()
    add_due(participant, 30, now)
    assert len(reminders.reminders_dispatch_due(now=now, queue=queue, max_batches=2)) == 2
    assert len(waiting()) == 2


def test_a_batch_task_sends_at_most_one_batch_and_duplicates_send_nothing_twice(participant):
    plan(participant)
    now = timezone.now()
    add_due(participant, 2 * reminders.BATCH_SIZE, now)
    due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__lte=now).count()
    assert due == 2 * reminders.BATCH_SIZE + 6
    # What the tick enqueued (3 tasks) plus duplicates (a redelivery, an earlier tick's extra).
    results = [tasks.reminders_send_batch.apply().get() for _ in range(5)]
    assert results == [reminders.BATCH_SIZE, reminders.BATCH_SIZE, 6, 0, 0]
    message_ids = [m.extra_headers["Message-ID"] for m in mail.outbox]
    assert len(message_ids) == len(set(message_ids)) == due
    assert Reminder.objects.filter(state=ReminderState.SENT).count() == due
