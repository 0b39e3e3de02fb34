from __future__ import annotations

import hashlib
import threading
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.urls import reverse

from lesions.models import UltrasoundMeasurement
from participants.models import Participant
from tests.conftest import sign_in
from tests.exports.conftest import job_bytes, job_rows
from trial.audit import audit_context, event_model_for
from trial.exports import services
from trial.exports.models import ExportJob, ExportStatus
from trial.exports.progress import ProgressReporter
from trial.exports.tasks import export_run


def test_job_goes_from_queued_to_done_with_a_file_its_hash_and_a_log_entry(
    study_data, monitor, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as enqueued:
        job = services.export_request(actor=monitor, kind="csv_long", parameters={})
    assert job.status == ExportStatus.QUEUED
    assert len(enqueued) == 1  # enqueued only when the request commits
    export_run.apply(args=[job.pk]).get()
    job.refresh_from_db()
    assert job.status == ExportStatus.DONE
    assert job.sha256 == hashlib.sha256(job_bytes(job)).hexdigest()
    assert job.row_count == len(job_rows(job)) and job.progress == job.total > 0
    assert job.parameters["site_ids"] == [study_data.site_id]
    logged = event_model_for(ExportJob).objects.filter(pgh_obj_id=job.pk).order_by("pgh_id").first()
    assert (logged.kind, logged.requested_by_id) == ("csv_long", monitor.pk)

    first_file = job.file.name
    export_run.apply(args=[job.pk]).get()  # a repeated delivery does not redo the export
    job.refresh_from_db()
    assert job.file.name == first_file


def test_progress_and_download_link_show_on_the_exports_page(study_data, monitor, client, run_export):
    job = run_export(monitor, "csv_long")
    sign_in(client, monitor)
    page = client.get(reverse("exports:list"))
    assert page.status_code == 200
    assert reverse("exports:download", args=[job.pk]).encode() in page.content
    response = client.get(reverse("exports:download", args=[job.pk]))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == job_bytes(job)
    assert response["X-Content-SHA256"] == job.sha256


def test_a_user_exports_only_their_own_sites(study_data, monitor_b, site_a, run_export):
    job = run_export(monitor_b, "csv_long")
    assert job.status == ExportStatus.DONE
    assert job_rows(job) == []  # site B has no participants
    with pytest.raises(ValidationError):
        services.export_request(actor=monitor_b, kind="csv_long", parameters={"site_ids": [site_a.pk]})
    with pytest.raises(ValidationError):
        services.export_request(
            actor=monitor_b, kind="audit_trail", parameters={"study_id": study_data.study_id}
        )


def test_a_cross_site_data_manager_exports_every_site(study_data, data_manager, run_export):
    rows = job_rows(run_export(data_manager, "csv_long"))
    assert {r["study_id"] for r in rows} == {study_data.study_id}


def test_nobody_downloads_another_persons_export(study_data, monitor, data_manager, client, run_export):
    job = run_export(monitor, "csv_long")
    sign_in(client, data_manager)
    assert client.get(reverse("exports:download", args=[job.pk])).status_code == 404


def test_a_download_is_refused_once_the_site_is_no_longer_theirs(study_data, monitor, client, run_export):
    job = run_export(monitor, "csv_long")
    monitor.memberships.all().delete()
    sign_in(client, monitor)
    assert client.get(reverse("exports:download", args=[job.pk])).status_code == 403


def test_a_coordinator_may_not_export(coordinator, client):
    with pytest.raises(PermissionDenied):
        services.export_request(actor=coordinator, kind="csv_long", parameters={})
    sign_in(client, coordinator)
    assert client.get(reverse("exports:list")).status_code == 403


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "nonsense"},
        {"kind": "csv_wide", "form": ""},
        {"kind": "csv_wide", "form": "NOT_A_FORM"},
        {"kind": "audit_trail", "study_id": "ZZ-999"},
        {"kind": "csv_long", "sites": ["abc"]},
        {"kind": "csv_long", "sites": ["999999"]},
    ],
)
def test_bad_parameters_are_answered_with_the_form_not_an_error(study_data, monitor, client, data):
    sign_in(client, monitor)
    response = client.post(reverse("exports:list"), data)
    assert response.status_code == 400
    assert not ExportJob.objects.exists()


def test_a_job_with_malformed_parameters_fails_with_a_message(monitor):
    job = ExportJob.objects.create(kind="csv_wide", parameters={"site_ids": "all"}, requested_by=monitor)
    export_run.apply(args=[job.pk]).get()
    job.refresh_from_db()
    assert job.status == ExportStatus.FAILED and job.error
    assert export_run.apply(args=[987654]).get() is None  # a job that no longer exists


def test_missing_or_unfinished_exports_are_not_found(monitor, client):
    job = ExportJob.objects.create(kind="csv_long", parameters={}, requested_by=monitor)
    sign_in(client, monitor)
    assert client.get(reverse("exports:download", args=[job.pk])).status_code == 404
    assert client.get("/exports/999999/download/").status_code == 404


# Committed rows: the export and the save run on two connections, as the worker and a site do.
@pytest.mark.django_db(transaction=True)
def test_an_export_is_the_data_as_it_stood_when_it_began(study_data, monitor, monkeypatch):
    """A save committed while the file is being written (here: once its first record is out)
    is not in it, not even its part in the forms read later: an export never mixes the states of
    the data before and after a save."""
    measurement = UltrasoundMeasurement.objects.get(lesion__label="L1")
    job = ExportJob.objects.create(
        kind="csv_long", parameters={"site_ids": [study_data.site_id]}, requested_by=monitor
    )

    def coordinator_saves():  # at a site, while the export runs: one save of two forms
        with transaction.atomic(), audit_context(reason="transcription error"):
            Participant.objects.filter(pk=study_data.pk).update(time_zone="Europe/Paris")
            UltrasoundMeasurement.objects.filter(pk=measurement.pk).update(length_mm=Decimal("13.5"))
        connection.close()

    report = ProgressReporter.__call__

    def report_then_a_save_commits(self, done):
        report(self, done)
        if done == 1:
            elsewhere = threading.Thread(target=coordinator_saves)
            elsewhere.start()
            elsewhere.join()

    monkeypatch.setattr(ProgressReporter, "__call__", report_then_a_save_commits)
    export_run.apply(args=[job.pk]).get()
    job.refresh_from_db()
    assert job.status == ExportStatus.DONE, job.error
    values = {(r["form"], r["record_id"], r["field"]): r["value"] for r in job_rows(job)}
    assert values["PARTICIPANT", str(study_data.pk), "time_zone"] == study_data.time_zone
    assert values["ULTRASOUNDMEASUREMENT", str(measurement.pk), "length_mm"] == "12.0"
    measurement.refresh_from_db()
    assert measurement.length_mm == Decimal("13.5")  # the save itself went through
