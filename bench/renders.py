"""Measurements made inside one process rather than over HTTP: a visit's PDF (and WeasyPrint alone
on the same HTML), a reminder tick over 100,000 pending rows, and the exports (each in a child
process, for its own peak memory)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from unittest import mock

from django.db.models import Count
from django.utils import timezone

from bench.environment import PROJECT_DIR
from bench.query_count import resident_kb
from bench.traffic import percentile

# Reminders due at the measured tick. Every e-mail of the protocol is due at 09:00 in the
# participant's zone (ReminderRules.send_hour_local), so a site's whole day lands on one tick: per
# participant on study about 0.8 a day (6 visits x 6 questionnaires x invitation, 2 reminders and a
# last call, plus visit reminders, over 26 weeks). 50 is that 09:00 tick at one of three sites at
# N = 200, if no one answered (at the trial's size, 30 participants, it is under 10); five claim
# batch tasks of pro_measures.reminders.BATCH_SIZE. A larger burst spreads over several ticks
# (reminders_dispatch_due's max_batches) at the cost per e-mail reported next to it.
DUE_REMINDERS = 50


def _summary(seconds: list[float]) -> dict:
    times = [s * 1000 for s in seconds]
    return {
        "runs": len(times),
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(percentile(times, 0.95), 1),
    }


def visit_pdf(*, runs: int = 5) -> dict:
    """A completed visit's report from the database to PDF bytes (data, chart, template, render),
    against WeasyPrint alone rendering the same HTML with the same assets."""
    from weasyprint import HTML

    from participants.models import Visit, VisitStatus
    from trial.reports import services
    from trial.reports.pdf import SafeFetcher, html_to_pdf

    visit = (
        Visit.objects.filter(status=VisitStatus.COMPLETED)
        .annotate(rows=Count("measurements"))
        .order_by("-rows", "pk")
        .first()
    )
    if visit is None:
        return {"skipped": "no completed visit in the data"}
    rendered: list[tuple[str, dict]] = []

    def recording(html, *, assets=None):
        rendered.append((html, assets or {}))
        return html_to_pdf(html, assets=assets)

    full, bare = [], []
    for _ in range(runs):
        started = time.perf_counter()
        data, content_hash = services.current_report_data(visit)
        with mock.patch.object(services, "html_to_pdf", recording):
            services.render_report(data, content_hash=content_hash, generated_at=timezone.now(), version=1)
        full.append(time.perf_counter() - started)
        html, assets = rendered[-1]
        started = time.perf_counter()
        HTML(string=html, base_url=None, url_fetcher=SafeFetcher(assets)).write_pdf()
        bare.append(time.perf_counter() - started)
    return {"visit_id": visit.pk, "visit": visit.code, "full": _summary(full), "weasyprint": _summary(bare)}


def _tick_moment(now: dt.datetime) -> dt.datetime:
    """The moment the benchmark's tick runs at: now, or just before the first pending reminder of
    the seeded data falls due if that is earlier (the seed spreads its rows over the 30 days after
    seeding, so on a later day some are due and "nothing due" would no longer be true)."""
    from django.db.models import Min

    from pro_measures.models import Reminder, ReminderState

    first_due = Reminder.objects.filter(state=ReminderState.PENDING).aggregate(first=Min("due_at"))["first"]
    return min(now, first_due - dt.timedelta(seconds=1)) if first_due else now


def _reminded_invitations(now: dt.datetime, count: int) -> list:
    """Up to `count` questionnaires open at `now`, already e-mailed, of distinct contactable
    participants: the reminders of one tick go to many people (their own language, site, link)."""
    from bench.questionnaires import answerable_invitation
    from participants.models import Participant
    from pro_measures.models import Invitation, InvitationStatus

    invitations = list(
        Invitation.objects.answerable(now=now)
        .filter(
            status__in=(InvitationStatus.SENT, InvitationStatus.OPENED, InvitationStatus.IN_PROGRESS),
            participant__in=Participant.objects.contactable().exclude(email=""),
        )
        .order_by("participant_id", "pk")
        .distinct("participant_id")
        .select_related("participant")[:count]
    )
    return invitations or [answerable_invitation()]


_WRITE = re.compile(
    r"\s*(INSERT|UPDATE|DELETE|WITH\b.*\b(INSERT|UPDATE|DELETE)\b)", re.IGNORECASE | re.DOTALL
)


class _StatementCounter:
    """Counts the statements a block runs, and its commits: Django's (an atomic block's end) plus
    each write run outside any transaction (autocommit)."""

    def __init__(self, connection):
        self.connection = connection
        self.statements = 0
        self.commits = 0

    def __call__(self, execute, sql, params, many, context):
        self.statements += 1
        if not self.connection.in_atomic_block and _WRITE.match(sql):
            self.commits += 1
        return execute(sql, params, many, context)

    def count(self, function):
        commit = self.connection.commit

        def counted_commit():
            self.commits += 1
            return commit()

        with (
            self.connection.execute_wrapper(self),
            mock.patch.object(self.connection, "commit", counted_commit),
        ):
            return function()


def _durable_commit(*, runs: int = 20) -> dict:
    """The time of the smallest durable commit on this database: one row's UPDATE, alone in its
    transaction (autocommit), whose commit waits for the disk. The floor under every commit that
    writes, which the tick pays about once per e-mail."""
    from pro_measures.models import Reminder, ReminderKind, ReminderState

    row = Reminder.objects.create(
        key="bench:durable-commit",
        kind=ReminderKind.REMINDER,
        state=ReminderState.CANCELLED,
        due_at=timezone.now(),
        rules_fingerprint="bench",
    )
    seconds = []
    try:
        for n in range(runs):
            started = time.perf_counter()
            Reminder.objects.filter(pk=row.pk).update(attempts=n % 2)
            seconds.append(time.perf_counter() - started)
    finally:
        row.delete()
    return _summary(seconds)


# The queue the benchmark's tick enqueues its batch tasks on (on the bench's own Redis): no worker
# takes from it; it is deleted after each run, and the benchmark runs the tasks' body itself.
BENCH_REMINDER_QUEUE = "bench-reminder-batches"


def _queue_delete(name: str) -> None:
    from trial.celery import app

    with app.connection_for_write() as connection:
        # Declared on this channel first: kombu deletes a queue (and its binding) it knows.
        queue = app.amqp.queues[name](connection.default_channel)
        queue.declare()
        queue.delete()


def reminder_tick(*, runs: int = 5, idle_runs: int = 20) -> dict:
    """The real minute tick over the pending rows that seed_demo --pending-reminders added
    (100,000), and the sending it leads to, measured apart:
    - the tick (`reminders_dispatch_due`, the whole body of the periodic task): one count of the
      due rows and one batch task enqueued per BATCH_SIZE of them on the bench's real Redis (the
      queue is deleted after each run, untimed), with nothing due and with DUE_REMINDERS due;
    - the sending: the batch tasks' body (`reminders_send_batch`, one call per task the tick
      enqueued, one after another in this process: what the workers share), committed as in
      production, in total and per e-mail sent (in-memory mail backend: no SMTP conversation).
    The bench's own rows and the links they created are deleted after each run, so every run sees
    the same rows. One untimed run of each first (a worker's templates and translations are warm),
    and one untimed run that counts the statements and commits."""
    from django.core import mail
    from django.db import connection

    from pro_measures.models import InvitationLink, Reminder, ReminderKind, ReminderState
    from pro_measures.reminders import reminders_dispatch_due, reminders_send_batch

    now = _tick_moment(timezone.now())
    invitations = _reminded_invitations(now, DUE_REMINDERS)
    not_due = Reminder.objects.filter(state=ReminderState.PENDING, due_at__gt=now).count()

    def tick() -> list[str]:
        return reminders_dispatch_due(now=now, queue=BENCH_REMINDER_QUEUE)

    idle, idle_counter = [], _StatementCounter(connection)
    tick()
    idle_counter.count(tick)
    for _ in range(idle_runs):
        started = time.perf_counter()
        assert tick() == []
        idle.append(time.perf_counter() - started)

    last_link = InvitationLink.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    def make_due(run: int) -> None:
        Reminder.objects.bulk_create(
            Reminder(
                key=f"bench:due:{run}:{n}",
                kind=ReminderKind.REMINDER,
                invitation=invitation,
                visit_id=invitation.visit_id,
                site_id=invitation.participant.site_id,
                sequence=200 + n,
                due_at=now - dt.timedelta(seconds=1),
                rules_fingerprint="bench",
            )
            for n, invitation in zip(range(DUE_REMINDERS), itertools.cycle(invitations), strict=False)
        )

    def send(batch_tasks: int) -> int:
        # What the tick's batch tasks run (`lost`: no 'sending' rows here, as the tick saw).
        return sum(reminders_send_batch(now=now, lost=False) for _task in range(batch_tasks))

    def cleanup() -> None:
        _queue_delete(BENCH_REMINDER_QUEUE)
        Reminder.objects.filter(key__startswith="bench:due:").delete()
        InvitationLink.objects.filter(pk__gt=last_link).delete()
        mail.outbox = []

    ticks, sendings, sent, batch_tasks = [], [], [], []
    tick_counter, send_counter = _StatementCounter(connection), _StatementCounter(connection)
    try:
        for run in range(runs + 2):
            make_due(run)
            if run == 1:
                batch_tasks.append(len(tick_counter.count(tick)))
                sent.append(send_counter.count(lambda: send(batch_tasks[-1])))
            else:
                started = time.perf_counter()
                batch_tasks.append(len(tick()))
                dispatched = time.perf_counter()
                sent.append(send(batch_tasks[-1]))
                if run > 1:
                    ticks.append(dispatched - started)
                    sendings.append(time.perf_counter() - dispatched)
            cleanup()
    finally:
        cleanup()
    tick_summary, send_summary = _summary(ticks), _summary(sendings)
    emails = sent[-1] or 1
    return {
        "pending": not_due + DUE_REMINDERS,
        "pending_not_due": not_due,
        "due": DUE_REMINDERS,
        "participants": len({invitation.participant_id for invitation in invitations}),
        "batch_tasks": batch_tasks[-1],
        **tick_summary,
        "statements": tick_counter.statements,
        "commits": tick_counter.commits,
        "sending": {
            **send_summary,
            "sent": sent[-1],
            "ms_per_email": round(send_summary["p50_ms"] / emails, 2),
            "statements": send_counter.statements,
            "statements_per_email": round(send_counter.statements / emails, 1),
            "commits": send_counter.commits,
        },
        "durable_commit": _durable_commit(),
        "nothing_due": {
            **_summary(idle),
            "statements": idle_counter.statements,
            "commits": idle_counter.commits,
        },
    }


def child_process(argv: list[str], *, timeout_s: float) -> tuple[int | None, float, str, int]:
    """Run `argv` in a child process: (exit code, None if stopped after `timeout_s`; seconds; its
    output; its own peak resident memory in KiB). The peak is the child's VmHWM, read from /proc
    while it runs: the kernel's ru_maxrss from wait4 is no use here - a child started from this
    (large) process reports at least this process's size (exec records the parent's high-water
    mark), which is what the exports' "peak RSS" showed until 2026-12-07."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv from our callers
            argv, cwd=PROJECT_DIR, env=os.environ.copy(), stdout=out
        )
        started = time.perf_counter()
        timed_out = False
        peak_kb = 0
        while True:
            try:
                peak_kb = max(peak_kb, resident_kb(process.pid, "VmHWM"))
            except OSError:
                pass  # exited between the checks: its last reading stands
            pid, status, _usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s and not timed_out:
                timed_out = True
                process.terminate()
            time.sleep(0.05)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        output = out.read().decode()
    return (None if timed_out else process.returncode), wall, output, peak_kb


def export(kind: str, email: str, *, timeout_s: float) -> dict:
    """One export in a child process: its time and its peak resident memory. An export still
    running after `timeout_s` is stopped and reported as timed out (with its memory so far)."""
    code, wall, output, peak_kb = child_process(
        [sys.executable, "-m", "bench.export_job", kind, email], timeout_s=timeout_s
    )
    lines = output.strip().splitlines()
    if code is None:
        result = {"kind": kind, "status": f"timed out after {timeout_s:.0f} s", "seconds": round(wall, 2)}
    else:
        result = json.loads(lines[-1]) if code == 0 and lines else {"status": "crashed"}
    # The export's own reading at its end where it gave one (exact), else what /proc showed.
    peak_kb = max(peak_kb, result.pop("peak_rss_kb", 0))
    return {**result, "process_seconds": round(wall, 2), "peak_rss_mb": round(peak_kb / 1024, 1)}
