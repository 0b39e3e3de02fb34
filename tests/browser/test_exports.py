"""In the browser, with a real Celery worker: a monitor asks for the long CSV and the ODM export,
sees both queued with their progress, watches each turn into a download link without reloading the
page (static/js/export_progress.js polling the status endpoint), and downloads both. The CSV opens
as a spreadsheet would read it (UTF-8 with BOM, formulas neutralised) with the visit's values; the
ODM file validates against the ODM 1.3.2 XSD. The page passes axe (WCAG 2.x A/AA) at each step."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse
from lxml import etree
from playwright.sync_api import expect

from lesions import services as lesion_services
from tests.browser.test_sign_visit import completed_baseline  # noqa: F401 - shared fixture
from tests.browser.test_visit_pages import study  # noqa: F401 - shared fixture
from trial.celery import app
from trial.exports.csv_export import LONG_HEADER
from trial.exports.models import ExportJob, ExportStatus
from trial.exports.odm import ODM_NS, validate_odm
from trial.roles import Role

pytestmark = [pytest.mark.browser, pytest.mark.worker]

FORMULA = '=HYPERLINK("http://attacker.test","click")'


@pytest.fixture
def export_worker(celery_worker_process):
    """The real worker takes the exports this test enqueues (tasks go to its own queue)."""
    saved = app.conf.task_default_queue
    app.conf.task_default_queue = celery_worker_process.queue
    yield celery_worker_process
    app.conf.task_default_queue = saved


def _pause(worker) -> None:
    app.control.cancel_consumer(worker.queue, destination=[worker.hostname], reply=True)


def _resume(worker) -> None:
    app.control.add_consumer(worker.queue, destination=[worker.hostname], reply=True)


def _request(page, kind: str) -> None:
    page.locator("#id_kind").select_option(kind)
    page.get_by_role("button", name="Start the export").click()
    expect(page.get_by_text("The export has started")).to_be_visible()


def test_monitor_follows_two_exports_to_their_links_and_downloads_them(
    completed_baseline,  # noqa: F811
    export_worker,
    make_user,
    signed_in_page,
    visit,
    checkpoint,
):
    baseline, lesion, coordinator, _investigator = completed_baseline
    participant = baseline.participant
    lesion_services.lesion_update(
        actor=coordinator, lesion=lesion, data={"site_detail": FORMULA}, reason="detail"
    )
    monitor = make_user(role=Role.MONITOR, sites=[participant.site], full_name="Mona Monitor")
    page = signed_in_page(monitor)
    visit(reverse("exports:list"), "exports")

    # The worker holds off until both are asked for, so the queued state is there to be seen.
    _pause(export_worker)
    _request(page, "csv_long")
    _request(page, "odm")
    csv_row = page.locator("tr[data-export-job]", has_text="long format")
    odm_row = page.locator("tr[data-export-job]", has_text="CDISC ODM")
    for row in (csv_row, odm_row):
        expect(row).to_contain_text("Queued")
        expect(row.get_by_role("progressbar")).to_have_attribute("value", "0")
    checkpoint("queued")
    assert ExportJob.objects.filter(status=ExportStatus.QUEUED).count() == 2

    _resume(export_worker)
    announcer = page.locator("#export-announcer")
    for row in (csv_row, odm_row):  # no reload: the script turns each row into its link
        expect(row.get_by_role("link", name="Download")).to_be_visible(timeout=60_000)
        expect(row).to_contain_text("Ready")
        expect(row.get_by_role("progressbar")).to_have_count(0)
    expect(announcer).to_contain_text("ready to download")
    checkpoint("ready")
    assert ExportJob.objects.filter(status=ExportStatus.DONE).count() == 2

    with page.expect_download() as csv_download:
        csv_row.get_by_role("link", name="Download").click()
    data = csv_download.value.path().read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: spreadsheets read it as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == LONG_HEADER
    values = [dict(zip(LONG_HEADER, r, strict=True)) for r in rows[1:]]
    length = next(v for v in values if v["form"] == "ULTRASOUNDMEASUREMENT" and v["field"] == "length_mm")
    assert (length["study_id"], length["visit"], length["value"], length["unit"]) == (
        participant.study_id,
        "W0",
        "14.0",
        "mm",
    )
    assert length["entered_by"] == coordinator.audit_name
    detail = next(v for v in values if v["form"] == "LESION" and v["field"] == "site_detail")
    assert detail["value"] == "'" + FORMULA  # shown as text, never run as a formula

    with page.expect_download() as odm_download:
        odm_row.get_by_role("link", name="Download").click()
    path = odm_download.value.path()
    assert validate_odm(str(path)) == []
    document = etree.parse(str(path))
    subject = document.find(f".//{{{ODM_NS}}}SubjectData")
    assert subject.get("SubjectKey") == participant.study_id
    item = document.find(f".//{{{ODM_NS}}}ItemData[@ItemOID='I.ULTRASOUNDMEASUREMENT.LENGTH_MM']")
    assert item.get("Value") == "14.0"
