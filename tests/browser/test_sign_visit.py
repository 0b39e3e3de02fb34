"""In the browser: an investigator opens the queue of visits to sign, reviews a completed visit
(its records, the report made by the worker task, hashes), signs it with the password again,
downloads its PDF and reads the signature in it; then a coordinator's correction voids the
signature and the visit is back in the queue. Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import datetime as dt
import io
import time
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import expect
from pypdf import PdfReader

from lesions import services as lesion_services
from lesions.models import UltrasoundMeasurement
from lesions.services import LesionRow
from participants import services as participant_services
from participants import visits
from participants.visits import site_today
from tests.browser.test_visit_pages import study  # noqa: F401 - shared fixture
from tests.factories import DEFAULT_PASSWORD, ELIGIBLE_ANSWERS
from tests.lesions.conftest import measurement
from tests.reports.test_prompt_versions import report_worker  # noqa: F401 - shared fixture
from tests.signatures.test_signing import correct_measurement
from trial.reports.services import visit_report_generate
from trial.signatures.models import Signature

pytestmark = pytest.mark.browser


@pytest.fixture
def completed_baseline(study):  # noqa: F811
    participant, coordinator, investigator = study
    baseline = participant.visits.get(code="W0")
    lesion = lesion_services.lesion_add(
        actor=coordinator,
        participant=participant,
        label="L1",
        anatomical_site="elbow",
        laterality="left",
        first_seen_on=site_today(participant.site),
    )
    lesion_services.visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement("14.0", "9.0", "4.0"))],
    )
    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=site_today(participant.site))
    # What the worker does on the completion's announcement (the task by name; see tests/reports).
    visit_report_generate(visit_id=baseline.pk)
    return baseline, lesion, coordinator, investigator


def test_investigator_reviews_signs_and_downloads_the_pdf(
    completed_baseline, signed_in_page, visit, checkpoint, celery_eager
):
    baseline, lesion, coordinator, investigator = completed_baseline
    page = signed_in_page(investigator)

    visit(reverse("signatures:queue"), "queue")
    row = page.get_by_test_id("queue-row")
    expect(row).to_contain_text("A1-001")
    expect(row).to_contain_text("Not signed")
    row.get_by_role("link", name=f"Review {baseline}").click()
    checkpoint("review")
    expect(page.get_by_role("cell", name="14.0 × 9.0 × 4.0")).to_be_visible()
    expect(page.get_by_test_id("signature-status")).to_contain_text("Not signed yet")

    page.get_by_label("Meaning of this signature").select_option("reviewed_approved")
    page.get_by_label("Your password").fill("not my password")
    page.get_by_role("button", name="Sign", exact=True).click()
    checkpoint("wrong-password")
    expect(page.get_by_text("The password is not correct. Nothing was signed.")).to_be_visible()
    assert not Signature.objects.exists()

    page.get_by_label("Your password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign", exact=True).click()
    checkpoint("signed")
    signature = Signature.objects.get()
    status = page.get_by_test_id("signature-status")
    expect(status).to_contain_text("Ira Investigator")
    expect(status).to_contain_text("Reviewed and approved")
    expect(status).to_contain_text(signature.content_hash)

    # The signing enqueued a new report version (eager here); it is listed after a reload.
    page.reload()
    checkpoint("report-v2")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF v2").click()
    pdf = download_info.value.path().read_bytes()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "A1-001" in text and "14.0 × 9.0 × 4.0" in text
    assert "Ira Investigator Reviewed and approved" in text

    # A correction after signing voids the signature: the visit is back in the queue, marked.
    correct_measurement(baseline, lesion, coordinator, "13.0", "9.0", "4.0")
    visit(reverse("signatures:queue"), "queue-after-edit")
    expect(page.get_by_test_id("queue-row")).to_contain_text("Signature void: data changed")
    signature.refresh_from_db()
    assert signature.status == "void"
    assert Decimal(UltrasoundMeasurement.objects.get(visit=baseline).length_mm) == Decimal("13.0")


def _reload_until(page, locator, seconds: int = 60) -> None:
    """Reload until `locator` shows: what the worker makes appears within seconds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.reload()
        if locator.count():
            return
        time.sleep(0.5)
    expect(locator).to_be_visible()  # fails with Playwright's own message


@pytest.mark.worker
def test_a_correction_voids_the_signature_and_the_worker_makes_a_new_pdf(
    report_worker,  # noqa: F811 - first, so every announcement goes to it
    completed_baseline,
    signed_in_page,
    visit,
    checkpoint,
):
    """Issue #7's "Done when": sign; a coordinator changes a measurement; the investigator sees the
    signature void, a new PDF version made by the worker within seconds (no minute tick here), and
    the visit back in the queue."""
    baseline, lesion, coordinator, investigator = completed_baseline
    page = signed_in_page(investigator)
    visit(reverse("signatures:visit-sign", args=[baseline.pk]), "review")
    page.get_by_label("Your password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Sign", exact=True).click()
    checkpoint("signed")
    expect(page.get_by_test_id("signature-status")).to_contain_text("Ira Investigator")
    # The signing asked the worker for a version with the signature block.
    _reload_until(page, page.get_by_role("link", name="Download PDF v2"))

    correct_measurement(baseline, lesion, coordinator, "12.5", "9.0", "4.0")
    _reload_until(page, page.get_by_role("link", name="Download PDF v3"))
    checkpoint("after-correction")
    expect(page.get_by_test_id("signature-status")).to_contain_text("The signature is void")
    expect(page.get_by_role("cell", name="12.5 × 9.0 × 4.0")).to_be_visible()
    expect(page.get_by_role("link", name="Download PDF v2")).to_be_visible()  # kept
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF v3").click()
    pdf = download_info.value.path().read_bytes()
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    assert "12.5 × 9.0 × 4.0" in text and "Void" in text

    visit(reverse("signatures:queue"), "queue-after-correction")
    expect(page.get_by_test_id("queue-row")).to_contain_text("Signature void: data changed")


def test_investigator_confirms_and_signs_eligibility(study, signed_in_page, visit, checkpoint):  # noqa: F811
    participant, coordinator, investigator = study
    today = site_today(participant.site)
    screening = participant_services.screening_create(
        actor=coordinator,
        site=participant.site,
        first_name="Joan",
        last_name="Roe",
        date_of_birth=dt.date(1965, 2, 3),
        sex="male",
        screening_date=today,
    )
    answers = {key: value for key, value in ELIGIBLE_ANSWERS.items() if not key.startswith("pregnancy_test")}
    participant_services.eligibility_record(
        actor=coordinator,
        screening=screening,
        answers={
            **answers,
            "childbearing_potential": False,
            "non_childbearing_reason": "male",
            "calcinosis_evidence_date": today - dt.timedelta(days=30),
        },
    )
    page = signed_in_page(investigator)
    visit(screening.get_absolute_url(), "screening")
    page.get_by_role("link", name="Confirm and sign eligibility").click()
    checkpoint("eligibility-review")
    expect(page.get_by_text("Every criterion is met.")).to_be_visible()
    expect(page.get_by_test_id("signature-status")).to_contain_text("Not signed yet")
    page.get_by_label("Meaning of this signature").select_option("reviewed_approved")
    page.get_by_label("Your password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Confirm and sign").click()
    checkpoint("eligibility-signed")
    expect(page.get_by_text("Eligibility confirmed and signed.")).to_be_visible()
    signature = Signature.objects.get(screening=screening)
    expect(page.get_by_test_id("signature-status")).to_contain_text(signature.content_hash)

    page.get_by_role("link", name="Screening page").click()
    checkpoint("screening-signed")
    line = page.get_by_test_id("esignatures")
    expect(line).to_contain_text("Ira Investigator — Reviewed and approved")
    expect(line).to_contain_text(signature.content_hash[:16])
    expect(page.get_by_text("Confirmed", exact=True)).to_be_visible()

    # The participant page shows the participant's eligibility signature line too (here: the
    # study participant's, confirmed before signatures existed, so waiting for one).
    visit(participant.get_absolute_url(), "participant")
    expect(page.get_by_test_id("esignatures")).to_contain_text("Not signed")
    expect(page.get_by_role("link", name="Review and sign the eligibility")).to_be_visible()
