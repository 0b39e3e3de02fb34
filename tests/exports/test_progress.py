"""Progress while an export runs, and the status answer the exports page's script polls."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.urls import reverse

from tests.conftest import sign_in
from trial.exports.models import ExportJob, ExportStatus
from trial.exports.progress import ProgressReporter
from trial.exports.tasks import export_run


def test_progress_is_written_at_most_once_per_interval(monitor):
    job = ExportJob.objects.create(kind="csv_long", parameters={}, requested_by=monitor, total=10)
    now = [100.0]
    report = ProgressReporter(job.pk, interval=1.0, clock=lambda: now[0])
    seen = []
    for done, at in ((1, 100.0), (2, 100.4), (3, 100.9), (4, 101.1), (5, 101.5), (6, 102.2)):
        now[0] = at
        report(done)
        job.refresh_from_db()
        seen.append(job.progress)
    assert seen == [1, 1, 1, 4, 4, 6]
    assert report.updates == 3


# Committed rows: the page asks on a connection of its own while the worker writes the file.
@pytest.mark.django_db(transaction=True)
def test_the_page_sees_progress_while_the_export_runs_not_only_at_the_end(
    study_data, monitor, client, monkeypatch
):
    """The export reads inside one transaction (a snapshot of the data); its progress must not
    wait for that transaction to end to be seen."""
    monkeypatch.setattr("trial.exports.progress.PROGRESS_INTERVAL_S", 0.0)  # every record
    job = ExportJob.objects.create(
        kind="csv_long", parameters={"site_ids": [study_data.site_id]}, requested_by=monitor
    )
    sign_in(client, monitor)
    url = reverse("exports:status", args=[job.pk])
    answers = []

    def page_asks():  # the exports page's script, polling
        answers.append(client.get(url).json())
        connection.close()

    report = ProgressReporter.__call__

    def report_then_page_asks(self, done):
        report(self, done)
        asking = threading.Thread(target=page_asks)
        asking.start()
        asking.join()

    monkeypatch.setattr(ProgressReporter, "__call__", report_then_page_asks)
    export_run.apply(args=[job.pk]).get()
    job.refresh_from_db()
    assert job.status == ExportStatus.DONE and job.total > 3
    # One record more each time, up to the total.
    assert [(a["status"], a["percent"]) for a in answers] == [
        ("running", min(99, 100 * done // job.total)) for done in range(1, job.total + 1)
    ]


def test_status_answers_progress_then_the_download_link(study_data, monitor, client, run_export):
    job = ExportJob.objects.create(
        kind="csv_long",
        parameters={"site_ids": [study_data.site_id]},
        requested_by=monitor,
        status=ExportStatus.RUNNING,
        progress=3,
        total=12,
    )
    sign_in(client, monitor)
    url = reverse("exports:status", args=[job.pk])
    # Without JavaScript, the page offers a reload while an export runs.
    assert b"Refresh progress" in client.get(reverse("exports:list")).content
    running = client.get(url)
    assert running.status_code == 200 and running["Cache-Control"] == "no-store"
    assert {k: running.json()[k] for k in ("status", "active", "percent", "download_url")} == {
        "status": "running",
        "active": True,
        "percent": 25,
        "download_url": None,
    }
    export_run.apply(args=[job.pk]).get()  # the worker finishes it (it redoes a job not done)
    ready = client.get(url).json()
    assert ready["status"] == "done" and ready["active"] is False and ready["percent"] == 100
    assert ready["download_url"] == reverse("exports:download", args=[job.pk])
    job.refresh_from_db()
    assert ready["sha256"] == job.sha256 and ready["rows"] == job.row_count

    page = client.get(reverse("exports:list")).content.decode()
    assert f'data-status-url="{url}"' in page and 'aria-live="polite"' in page
    assert "js/export_progress.js" in page and "<script>" not in page and "style=" not in page


def test_status_is_checked_like_the_download(
    study_data, monitor, data_manager, coordinator, client, run_export
):
    job = run_export(monitor, "csv_long")
    url = reverse("exports:status", args=[job.pk])
    sign_in(client, data_manager)
    assert client.get(url).status_code == 404  # not theirs
    sign_in(client, coordinator)
    assert client.get(url).status_code == 403  # may not export
    client.logout()
    assert client.get(url).status_code in (302, 403)
    monitor.memberships.all().delete()
    sign_in(client, monitor)
    assert client.get(url).status_code == 403  # the site is no longer theirs


def test_a_failed_export_reports_its_reason(monitor, client):
    job = ExportJob.objects.create(kind="csv_wide", parameters={"site_ids": "all"}, requested_by=monitor)
    export_run.apply(args=[job.pk]).get()
    sign_in(client, monitor)
    answer = client.get(reverse("exports:status", args=[job.pk])).json()
    assert answer["status"] == "failed" and answer["error"] and answer["download_url"] is None
