"""Measurements made inside one process rather than over HTTP: a visit's PDF (and WeasyPrint alone
on the same HTML), a reminder tick over 100,000 pending rows, and the exports (each in a child
process, for its own peak memory)."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from unittest import mock

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from bench.environment import PROJECT_DIR
from bench.traffic import percentile

DUE_REMINDERS = 50  # due at the tick: five claim batches of pro_measures.reminders.BATCH_SIZE (10)


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


def reminder_tick(*, runs: int = 5) -> dict:
    """One tick (`reminders_send_due`) over the pending rows that seed_demo --pending-reminders
    added (100,000, none due yet) plus one batch due now, reminders of an open questionnaire; each
    run is rolled back, so every run sees the same rows."""
    from bench.questionnaires import answerable_invitation
    from pro_measures.models import Reminder, ReminderKind, ReminderState
    from pro_measures.reminders import reminders_send_due

    invitation = answerable_invitation()
    seconds, sent = [], []
    for run in range(runs):
        with transaction.atomic():
            now = timezone.now()
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
                for n in range(DUE_REMINDERS)
            )
            pending = Reminder.objects.filter(state=ReminderState.PENDING).count()
            started = time.perf_counter()
            sent.append(reminders_send_due(now=now))
            seconds.append(time.perf_counter() - started)
            transaction.set_rollback(True)
    return {
        "pending": pending,
        "due": DUE_REMINDERS,
        "sent": sent[-1],
        **_summary(seconds),
    }


def export(kind: str, email: str, *, timeout_s: float) -> dict:
    """One export in a child process: its time and its peak resident memory. An export still
    running after `timeout_s` is stopped and reported as timed out (with its memory so far)."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(  # noqa: S603 - fixed argv: our interpreter and module
            [sys.executable, "-m", "bench.export_job", kind, email],
            cwd=PROJECT_DIR,
            env=os.environ.copy(),
            stdout=out,
        )
        started = time.perf_counter()
        timed_out = False
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout_s and not timed_out:
                timed_out = True
                process.terminate()
            time.sleep(0.2)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        lines = out.read().decode().strip().splitlines()
    if timed_out:
        result = {"kind": kind, "status": f"timed out after {timeout_s:.0f} s", "seconds": round(wall, 2)}
    else:
        result = json.loads(lines[-1]) if process.returncode == 0 and lines else {"status": "crashed"}
    # ru_maxrss is in KiB on Linux.
    return {**result, "process_seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
