"""A new report version within seconds of an edit, made by a real Celery worker from the editing
service's announcement - not by the minute tick, which never runs here. The earlier version stays,
with its hashes."""

from __future__ import annotations

import time

import pytest

from lesions.models import UltrasoundMeasurement
from participants import visits
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    baseline,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    injection,
    investigator,
    lesions,
    measurement,
    participant,
    screen,
    visit_data,
)
from tests.signatures.test_signing import correct_measurement
from tests.worker import RunningWorker
from trial.celery import app
from trial.reports.models import VisitReport

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

WAIT_S = 60


def _route_reports_to(queue: str | None) -> None:
    app.conf.task_routes = {"reports.tasks.*": {"queue": queue}} if queue else None
    app.amqp.flush_routes()
    app.amqp.__dict__.pop("router", None)  # rebuilt from the routes on next use


@pytest.fixture
def report_worker(celery_worker_process) -> RunningWorker:
    """The real worker takes the reports tasks announced by name (its queue is its own, so no
    other test run's tasks reach it)."""
    _route_reports_to(celery_worker_process.queue)
    try:
        yield celery_worker_process
    finally:
        _route_reports_to(None)


def versions_within(visit, count: int) -> list[VisitReport]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        reports = list(VisitReport.objects.filter(visit=visit).order_by("version"))
        if len(reports) >= count:
            return reports
        time.sleep(0.25)
    pytest.fail(f"no report v{count} of {visit} after {WAIT_S} s")


def wait_until_idle(worker: RunningWorker) -> None:
    """Until the worker's queue is empty and it runs nothing: every announcement so far is done."""
    inspector = app.control.inspect(destination=[worker.hostname], timeout=1)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        with app.connection_for_write() as connection:
            waiting = connection.default_channel.client.llen(worker.queue)  # Redis: a queue is a list
        busy = any((inspector.active() or {}).values()) or any((inspector.reserved() or {}).values())
        if not waiting and not busy:
            return
        time.sleep(0.25)
    pytest.fail(f"the worker was still busy after {WAIT_S} s")


def test_an_edit_makes_a_new_version_without_the_tick(report_worker, visit_data, coordinator, lesions):  # noqa: F811
    visits.visit_complete(actor=coordinator, visit=visit_data, visit_date=TODAY)
    # The completion's announcement (or an earlier entry's, if the worker takes it only now).
    versions_within(visit_data, 1)
    wait_until_idle(report_worker)
    (first,) = VisitReport.objects.filter(visit=visit_data)

    started = time.monotonic()
    correct_measurement(visit_data, lesions[0], coordinator, length="11.0")
    old, new = versions_within(visit_data, 2)
    assert time.monotonic() - started < WAIT_S
    assert new.trigger == "changed" and new.version == 2
    assert new.content_hash != first.content_hash
    # The first version is kept as it was: same hashes, same file.
    assert (old.pk, old.content_hash, old.file_sha256) == (first.pk, first.content_hash, first.file_sha256)
    assert UltrasoundMeasurement.objects.get(visit=visit_data, lesion=lesions[0]).length_mm == 11
