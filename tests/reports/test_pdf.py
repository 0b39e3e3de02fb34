"""The PDF visit report: what a clinician reads in it, its versions, and safe rendering."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal

import pytest
from weasyprint.urls import URLFetchingError

from lesions.models import UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from tests.conftest import sign_in
from tests.reports.conftest import measurement, pdf_text, report_text
from trial.reports.models import ReportDownload, VisitReport
from trial.reports.pdf import Asset, RefusedURL, SafeFetcher, html_to_pdf
from trial.reports.services import visit_report_generate, visits_changed_since_report

pytestmark = pytest.mark.django_db


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def test_report_shows_header_measurements_injections_safety_and_footer(completed_visit, coordinator):
    report = visit_report_generate(visit_id=completed_visit.pk, actor=coordinator)
    text = flat(report_text(report))
    # Header: study, site, study id (no names), visit, window status, protocol version.
    for expected in (
        "STS Calcinosis Study",
        "A1 Site A",
        "A1-001",
        "W0",
        "Within the window",
        "Protocol version 1.0",
    ):
        assert expected in text
    assert "Jane" not in text and "Doe" not in text
    # Per-lesion measurements: L1 12.0 x 8.0 x 5.0, volume pi/6*480 = 251.3 mm3.
    assert "12.0 × 8.0 × 5.0" in text and "251.3" in text
    # Injections with dose totals: 0.40 + 0.60 mL at 250 mg/mL = 250.00 mg.
    assert "100.00" in text and "150.00" in text and "Total this visit 1.00 250.00" in text
    assert "Urine hCG 2026-11-03 Negative" in text
    assert "Injection site pain or burning" in text
    # Who entered what: the coordinator's entries from the audit trail.
    assert "Casey Coordinator Entered ultrasound measurement L1" in text
    assert "Not signed yet." in text
    # Footer: page numbers, generation time in UTC and the site's zone, the content hash.
    assert "Page 1 of 2" in text
    assert "Generated 2026-11-03 15:00:00 UTC (2026-11-03 10:00:00 EST)" in text
    assert report.content_hash in text.replace(" ", "")
    with report.pdf.open("rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == report.file_sha256


def test_change_from_baseline_and_trend_at_a_later_visit(completed_visit, participant, lesions, coordinator):
    import time_machine

    from participants import visits

    w4 = participant.visits.get(code="W4")
    l1, _l2, l3 = lesions
    with time_machine.travel(w4.target_date.isoformat() + " 15:00Z", tick=False):
        visit_lesions_save(
            actor=coordinator,
            visit=w4,
            rows=[
                LesionRow(l1, measurement=measurement("9.0", "8.0", "5.0")),
                LesionRow(l3, measurement=measurement("15.0", "10.0", "6.0")),
            ],
        )
        visits.visit_complete(actor=coordinator, visit=w4, visit_date=w4.target_date)
        text = flat(report_text(visit_report_generate(visit_id=w4.pk)))
    # L1: 12.0 -> 9.0 is -3.0 mm, -25.0 %; L3: 20.0 -> 15.0 is -5.0 mm, -25.0 %.
    assert "-3.0 / -25.0 %" in text and "-5.0 / -25.0 %" in text
    assert "Longest diameter by visit" in text  # the SVG chart's title, drawn as text


def test_an_edit_makes_a_new_version_and_keeps_the_old_with_its_hash(completed_visit, lesions, coordinator):
    first = visit_report_generate(visit_id=completed_visit.pk)
    assert visit_report_generate(visit_id=completed_visit.pk).pk == first.pk  # unchanged: no new version
    row = UltrasoundMeasurement.objects.get(visit=completed_visit, lesion=lesions[0])
    visit_lesions_save(
        actor=coordinator,
        visit=completed_visit,
        rows=[
            LesionRow(
                lesions[0], measurement=measurement("11.0", "8.0", "5.0"), measurement_version=row.row_version
            )
        ],
        reason="caliper misplaced",
    )
    assert visits_changed_since_report().filter(pk=completed_visit.pk).exists()
    second = visit_report_generate(visit_id=completed_visit.pk)
    assert second.version == 2 and second.content_hash != first.content_hash
    first.refresh_from_db()
    assert "12.0 × 8.0 × 5.0" in flat(report_text(first))
    assert "11.0 × 8.0 × 5.0" in flat(report_text(second))
    assert first.content_hash in report_text(first).replace("\n", "").replace(" ", "")
    assert VisitReport.objects.filter(visit=completed_visit).count() == 2


def test_the_fetcher_refuses_files_networks_and_data_urls():
    fetcher = SafeFetcher({"chart.svg": Asset(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml")})
    for url in (
        "file:///etc/passwd",
        "http://169.254.169.254/",
        "https://example.org/x.css",
        "data:text/plain,hi",
        "ftp://x/y",
    ):
        with pytest.raises(RefusedURL):
            fetcher.fetch(url)
    assert fetcher.fetch("edc-asset:chart.svg").read().startswith(b"<svg")
    assert b"@page" in fetcher.fetch("edc-static:reports/visit_report.css").read()
    with pytest.raises(RefusedURL):
        fetcher.fetch("edc-static:../trial/settings.py")


def test_a_document_naming_local_files_renders_without_them():
    html = '<p>before</p><img src="file:///etc/passwd"><link rel="stylesheet" href="http://127.0.0.1:1/x.css"><p>after</p>'
    result = html_to_pdf(html)
    assert "file:///etc/passwd" in result.refused and "http://127.0.0.1:1/x.css" in result.refused
    assert "root:" not in pdf_text(result.pdf)
    assert URLFetchingError  # WeasyPrint turns the refusal into a warning, not a failed render


def test_hostile_text_in_an_adverse_event_is_printed_not_fetched(completed_visit, caplog):
    report = visit_report_generate(visit_id=completed_visit.pk)
    text = flat(report_text(report))
    assert '<img src="file:///etc/passwd">' in text  # shown as the text that was typed
    assert "root:x:0:0" not in text
    assert "refused" not in caplog.text  # escaped: never even reached the fetcher


def test_download_is_permission_checked_and_recorded(client, completed_visit, coordinator, make_user, site_b):
    from trial.roles import Role

    report = visit_report_generate(visit_id=completed_visit.pk)
    outsider = make_user(role=Role.INVESTIGATOR, sites=[site_b])
    sign_in(client, outsider)
    assert client.get(f"/reports/{report.pk}/download/").status_code == 404
    assert not ReportDownload.objects.exists()
    sign_in(client, coordinator)
    response = client.get(f"/reports/{report.pk}/download/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    download = ReportDownload.objects.get()
    assert (download.report, download.user) == (report, coordinator)


def test_the_task_completion_announces_by_name_renders_the_report(
    visit_data, coordinator, django_capture_on_commit_callbacks
):
    """participants announces by task name (it may not import the read side): that name must be
    a registered task that renders the report, within its time limits."""
    from participants import visits
    from tests.reports.conftest import TODAY
    from trial.celery import app

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        visits.visit_complete(actor=coordinator, visit=visit_data, visit_date=TODAY)
    assert callbacks  # the announcement waits for the commit
    app.loader.import_default_modules()  # what a worker does when it starts
    task = app.tasks["reports.tasks.visit_report_generate"]
    assert (task.soft_time_limit, task.time_limit) == (60, 90)
    task.apply(args=[visit_data.pk]).get()
    report = VisitReport.objects.get(visit=visit_data)
    assert report.version == 1 and report.trigger == "completed"
    assert report.render_seconds < Decimal(60)


def test_report_shows_thumbnails_of_the_measured_images(
    completed_visit, coordinator, lesions, django_capture_on_commit_callbacks
):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from pydicom.data import get_testdata_file
    from pypdf import PdfReader

    from lesions.dicom import services as dicom_services
    from lesions.tasks import dicom_file_process

    first = visit_report_generate(visit_id=completed_visit.pk, actor=coordinator)
    with open(get_testdata_file("examples_palette.dcm"), "rb") as handle:
        content = handle.read()
    with django_capture_on_commit_callbacks(execute=False):
        dicom_file = dicom_services.dicom_file_upload(
            actor=coordinator,
            lesion=lesions[0],
            visit=completed_visit,
            upload=SimpleUploadedFile("scan.dcm", content, content_type="application/dicom"),
        )
    dicom_file_process.apply(args=[dicom_file.pk])
    second = visit_report_generate(visit_id=completed_visit.pk, actor=coordinator)
    assert second.version == first.version + 1  # a new image makes the report stale
    text = flat(report_text(second))
    assert "Measured ultrasound images (de-identified)" in text and "may show burned-in text" in text
    with second.pdf.open("rb") as handle:
        reader = PdfReader(io.BytesIO(handle.read()))
    assert sum(len(page.images) for page in reader.pages) >= 1
