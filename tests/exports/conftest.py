"""The completed baseline visit of tests/reports (site A, 3 November 2026), with a participant
whose screening carries a medical record number and whose e-mail is on file, and a second
participant at site B; plus the people who export."""

from __future__ import annotations

import csv
import io

import pytest

from participants import services
from tests.factories import ELIGIBLE_ANSWERS
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    frozen_today,
    investigator,
    lesions,
    participant,
    screen,
    visit_data,
)
from trial.exports import services as export_services
from trial.exports.tasks import export_run
from trial.roles import Role

MRN = "MRN-4471902"
EMAIL = "jane.doe.private@example.org"


@pytest.fixture
def eligible_screening(screen, coordinator):  # noqa: F811
    screening = screen(medical_record_number=MRN)
    services.eligibility_record(actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
    screening.refresh_from_db()
    return screening


@pytest.fixture
def study_data(completed_visit, participant):  # noqa: F811
    from participants.models import Participant
    from trial.audit import audit_context

    with audit_context(reason="e-mail given at enrolment"):
        Participant.objects.filter(pk=participant.pk).update(email=EMAIL)
    participant.refresh_from_db()
    return participant


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a], full_name="Mona Monitor")


@pytest.fixture
def monitor_b(make_user, site_b):
    return make_user(role=Role.MONITOR, sites=[site_b], full_name="Bert Monitor")


@pytest.fixture
def data_manager(make_user):
    return make_user(role=Role.DATA_MANAGER, full_name="Dana Manager")


@pytest.fixture
def run_export(django_capture_on_commit_callbacks):
    """Request an export as `actor` and run its task in this process with Celery's `.apply()`."""

    def run(actor, kind, **parameters):
        with django_capture_on_commit_callbacks(execute=False):
            job = export_services.export_request(actor=actor, kind=kind, parameters=parameters)
        export_run.apply(args=[job.pk]).get()
        job.refresh_from_db()
        return job

    return run


def job_bytes(job) -> bytes:
    with job.file.open("rb") as handle:
        return handle.read()


def job_rows(job) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(job_bytes(job).decode("utf-8-sig"))))
