"""Reminders under faults (issue #10 item 1): every due reminder reaches the mail server exactly
once, counted by an SMTP server in the test process, whatever happens to the workers and Redis.

Real Celery worker processes (tests/worker.py) run the beat's tick task, sent as beat sends it
(`send_task` of the `reminders-tick` entry of CELERY_BEAT_SCHEDULE), against the test PostgreSQL.
The tick only enqueues `reminders_send_batch` tasks (one per batch of due reminders, on the queue
the tick came from); the workers run those, which claim and deliver over SMTP, as production does. The broker is a Redis server of this test's own
(started here, on a free port): flushing it cannot touch the shared test Redis other runs use.
Nothing waits a fixed time: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest
import redis
from aiosmtpd.controller import Controller
from celery import Celery
from django.conf import settings
from django.db import connection
from django.utils import timezone

from participants import services
from pro_measures import invitations, reminders
from pro_measures.models import Reminder, ReminderState
from tests.participants.conftest import (  # noqa: F401 - shared fixtures (not the frozen clock)
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    investigator,
    screen,
)
from tests.worker import worker_started

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WAIT_S = 45


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting until {what}")
        time.sleep(0.1)


# --- The mail sink ---------------------------------------------------------------------------


class CountingSink:
    """An SMTP server (aiosmtpd) that keeps the Message-ID of every message it accepted (answered
    250 to). It can hold one message at the end of DATA before answering - the moment to kill the
    sender - and then either accept it (the server queued it, the client never heard) or not."""

    def __init__(self):
        self.accepted: list[str] = []
        self.received = 0
        self.hold_at: int | None = None  # the n-th message received (1-based)
        self.accept_held = True
        self.holding = threading.Event()
        self.release = threading.Event()
        self.meet_at_first: int = 0  # the first message waits for this many in flight at once
        self.in_flight = 0
        self.met = threading.Event()
        self._lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        message_id = email.message_from_bytes(envelope.original_content or envelope.content)["Message-ID"]
        with self._lock:
            self.received += 1
            number = self.received
            self.in_flight += 1
            if self.meet_at_first and self.in_flight >= self.meet_at_first:
                self.met.set()
        try:
            if number == 1 and self.meet_at_first:
                # Two workers really send at the same time: the first waits for another sender.
                await self._wait(self.met)
            if number == self.hold_at:
                if self.accept_held:
                    self._accept(message_id)
                self.holding.set()
                await self._wait(self.release)
                if not self.accept_held:
                    return "451 4.3.0 Sender lost before the message was accepted"
                return "250 2.0.0 OK"
            self._accept(message_id)
            return "250 2.0.0 OK"
        finally:
            with self._lock:
                self.in_flight -= 1

    def _accept(self, message_id: str) -> None:
        with self._lock:
            self.accepted.append(message_id)

    @staticmethod
    async def _wait(event: threading.Event) -> None:
        deadline = time.monotonic() + WAIT_S
        while not event.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)


@pytest.fixture
def sink() -> Iterator[tuple[CountingSink, int]]:
    handler = CountingSink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        handler.release.set()
        handler.met.set()
        controller.stop()


# --- A broker of the test's own, and the beat -------------------------------------------------


@pytest.fixture
def broker(tmp_path) -> Iterator[str]:
    """A Redis server for this test alone (no persistence, like the development one)."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        wait_until(lambda: _answers(client), "the test's Redis answers", timeout=10)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _answers(client: redis.Redis) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def beat(broker) -> Celery:
    """A long-lived client of the broker, as the beat process is; it also reads task results."""
    client = Celery("faults-beat", broker=broker, backend=broker)
    client.conf.update(task_serializer="json", accept_content=["json"], result_serializer="json")
    return client


def tick(beat: Celery, queue: str):
    """Send the reminders tick exactly as beat sends its schedule entry."""
    entry = settings.CELERY_BEAT_SCHEDULE["reminders-tick"]
    return beat.send_task(entry["task"], entry.get("args", ()), entry.get("kwargs", {}), queue=queue)


def sent_by(beat: Celery, tick_result) -> list[int]:
    """Wait for a tick and the batch tasks it enqueued; the number each batch task sent."""
    batch_ids = tick_result.get(timeout=WAIT_S)
    return [beat.AsyncResult(batch_id).get(timeout=WAIT_S) for batch_id in batch_ids]


@pytest.fixture
def start_worker(broker, beat, sink, tmp_path):
    """Start a worker (on `queue`, a new one by default) that uses the test's broker and sends
    its mail to the sink over SMTP. Workers stop when the test ends."""
    _handler, smtp_port = sink
    with ExitStack() as stack:

        def start(queue: str | None = None):
            return stack.enter_context(
                worker_started(
                    tmp_path / "workers.log",
                    queue=queue,
                    env={"REDIS_URL": broker, "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}"},
                    celery_app=beat,
                )
            )

        yield start


# --- The reminders that are due --------------------------------------------------------------


@pytest.fixture
def due(consented, coordinator) -> list[int]:  # noqa: F811
    """A participant enrolled today whose baseline questionnaires' e-mails (invitation,
    reminders, last call: one row each) are all due now. Returns their ids."""
    participant = services.participant_enroll(
        actor=coordinator,
        screening=consented,
        enrolled_on=timezone.localdate(),
        email="jane@example.org",
        time_zone="America/New_York",
    )
    assert invitations.invitations_plan_for_participant(participant_id=participant.pk) > 0
    Reminder.objects.update(due_at=timezone.now() - dt.timedelta(minutes=1))
    ids = list(Reminder.objects.values_list("pk", flat=True))
    assert len(ids) > 2 * reminders.BATCH_SIZE  # several batches, so a kill lands mid-run
    return ids


def states() -> Counter:
    return Counter(Reminder.objects.values_list("state", flat=True))


def all_sent(ids: list[int]) -> bool:
    return states() == Counter({ReminderState.SENT: len(ids)})


def sending_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = %s"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [reminders.SENDING_LOCK_NAMESPACE],
        )
        return cursor.fetchone()[0]


def assert_each_sent_once(handler: CountingSink, ids: list[int]) -> None:
    message_ids = list(Reminder.objects.filter(pk__in=ids).values_list("message_id", flat=True))
    assert all(message_ids) and len(set(message_ids)) == len(ids)
    delivered = Counter(handler.accepted)
    assert sorted(m for m, n in delivered.items() if n > 1) == []  # none twice
    assert sorted(set(message_ids) - set(delivered)) == []  # none missing
    assert sorted(set(delivered) - set(message_ids)) == []  # nothing else
    assert len(handler.accepted) == len(ids)


def kill(worker) -> None:
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)


# --- The faults ------------------------------------------------------------------------------


def test_a_worker_killed_mid_batch_loses_no_reminder_and_sends_none_twice(due, sink, beat, start_worker):
    handler, _port = sink
    handler.hold_at, handler.accept_held = 5, False  # killed before the server accepted the 5th
    first = start_worker()
    tick(beat, first.queue)
    assert handler.holding.wait(WAIT_S), "the worker never got to the 5th e-mail"
    kill(first)
    handler.release.set()

    # Mid-batch: 4 sent, the 5th 'sending', the rest of the batch and the others pending.
    assert states() == Counter(
        {ReminderState.SENT: 4, ReminderState.SENDING: 1, ReminderState.PENDING: len(due) - 5}
    )
    # The dead worker's connection is gone, and with it its sending locks.
    wait_until(lambda: sending_locks_held() == 0, "PostgreSQL dropped the dead worker's locks")

    second = start_worker()
    assert sum(sent_by(beat, tick(beat, second.queue))) == len(due) - 4
    assert all_sent(due)
    assert_each_sent_once(handler, due)
    recovered = Reminder.objects.get(attempts=1)
    assert "worker lost while sending" in recovered.last_error


def test_a_worker_killed_after_the_server_accepted_resends_that_one_with_the_same_message_id(
    due, sink, beat, start_worker
):
    """The window that remains (see reminders_send_due): the server accepted, the worker died
    before recording it. That reminder goes out again - the same Message-ID - and no other."""
    handler, _port = sink
    handler.hold_at, handler.accept_held = 3, True
    first = start_worker()
    tick(beat, first.queue)
    assert handler.holding.wait(WAIT_S)
    kill(first)
    handler.release.set()
    wait_until(lambda: sending_locks_held() == 0, "PostgreSQL dropped the dead worker's locks")

    second = start_worker()
    sent_by(beat, tick(beat, second.queue))
    assert all_sent(due)
    delivered = Counter(handler.accepted)
    twice = [message_id for message_id, n in delivered.items() if n == 2]
    assert len(twice) == 1 and max(delivered.values()) == 2
    assert Reminder.objects.get(message_id=twice[0]).attempts == 1
    assert len(delivered) == len(due)  # every reminder, by Message-ID, exactly once


def test_flushing_redis_after_ticks_were_queued_loses_no_reminder(due, sink, beat, broker, start_worker):
    handler, _port = sink
    store = redis.Redis.from_url(broker)
    queue = f"test-{uuid.uuid4().hex[:12]}"

    # Ticks queued while no worker runs, then Redis loses everything.
    tick(beat, queue)
    tick(beat, queue)
    assert store.llen(queue) == 2
    store.flushdb()
    assert store.dbsize() == 0

    # A worker mid-send (the tick's first batch task); the tick's other batch tasks and more
    # ticks queued behind it; Redis flushed again under it, losing all of them.
    handler.hold_at = 8
    worker = start_worker(queue)
    tick(beat, queue)
    assert handler.holding.wait(WAIT_S)
    assert store.llen(queue) == -(-len(due) // reminders.BATCH_SIZE) - 1
    tick(beat, queue)
    tick(beat, queue)
    store.flushdb()
    handler.release.set()

    # The interrupted batch carried on to the end; the next tick from the same beat (run after
    # it by the one worker) enqueues batches for what the lost tasks owed, and the one after
    # finds nothing more owed.
    left = len(due) - reminders.BATCH_SIZE
    batches = sent_by(beat, tick(beat, queue))
    assert sum(batches) == left and len(batches) == -(-left // reminders.BATCH_SIZE)
    assert tick(beat, queue).get(timeout=WAIT_S) == []
    assert all_sent(due)
    assert_each_sent_once(handler, due)
    assert worker.process.poll() is None


def test_two_workers_and_two_ticks_at_once_send_each_reminder_once(due, sink, beat, start_worker):
    handler, _port = sink
    handler.meet_at_first = 2  # the first e-mail waits until the other worker is sending too
    workers = [start_worker(), start_worker()]
    results = [tick(beat, worker.queue) for worker in workers]
    counts = [sum(sent_by(beat, result)) for result in results]
    assert handler.met.is_set(), "the two workers never sent at the same time"
    assert all(count > 0 for count in counts), counts  # both did part of the work
    assert sum(counts) == len(due)
    assert all_sent(due)
    assert_each_sent_once(handler, due)
