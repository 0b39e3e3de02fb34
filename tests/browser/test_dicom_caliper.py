"""In the browser: a coordinator uploads the scanner's palette-colour sample to a lesion at the
baseline visit, sees the de-identified preview with its burned-in annotation flag, measures the
length and the width with two clicks each, gets the millimetres the scanner's calibration gives
(0.026229 cm per pixel), and saves the measurement with its provenance."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import expect
from pydicom.data import get_testdata_file

from lesions.models import DicomFile, MeasurementSource, UltrasoundMeasurement
from tests.browser.test_injection_visit import study  # noqa: F401 - the shared participant fixture

pytestmark = pytest.mark.browser


def click_pixel(page, x: int, y: int) -> None:
    """Click pixel (x, y) of the 800 x 350 image, whatever size it is displayed at."""
    box = page.locator("#dicom-frame").bounding_box()
    page.locator("#dicom-frame").click(position={"x": x * box["width"] / 800, "y": y * box["height"] / 350})


def test_measure_a_lesion_on_the_ultrasound_image(study, signed_in_page, visit, checkpoint, celery_eager):  # noqa: F811
    participant, coordinator, _today = study
    baseline = participant.visits.get(code="W0")
    lesion = participant.lesions.get(label="L1")
    page = signed_in_page(coordinator)

    visit(reverse("lesions:visit-table", args=[baseline.pk]), "lesion-table")
    page.get_by_role("link", name="Images and caliper L1").click()
    checkpoint("images-empty")
    expect(page.get_by_text("No file yet.")).to_be_visible()

    page.get_by_label("Ultrasound DICOM files").set_input_files(get_testdata_file("examples_palette.dcm"))
    page.get_by_role("button", name="Upload").click()
    page.wait_for_url("**/images/")
    checkpoint("uploaded")
    files = page.locator("#dicom-files")
    expect(files).to_contain_text("examples_palette.dcm")
    expect(files).to_contain_text("Ready")
    expect(files).to_contain_text("Philips Medical Systems CX50")
    expect(page.locator("#burned-in-flag")).to_be_visible()
    expect(page.locator("#dicom-frame")).to_have_js_property("naturalWidth", 800)

    # Length: 100 pixels across = 100 x 0.02622878766 cm = 26.23 mm.
    click_pixel(page, 300, 200)
    click_pixel(page, 400, 200)
    expect(page.locator("#caliper-result")).to_have_text("Length: 26.2 mm")
    expect(page.get_by_label("Length (mm)")).to_have_value("26.2")
    # The width is next: 60 pixels down = 60 x 0.02622878766 cm = 15.74 mm.
    expect(page.get_by_role("radio", name="Width")).to_be_checked()
    click_pixel(page, 350, 150)
    click_pixel(page, 350, 210)
    expect(page.locator("#caliper-result")).to_have_text("Width: 15.7 mm")
    expect(page.get_by_label("Width (mm)")).to_have_value("15.7")
    expect(page.locator("#measurement-source")).to_have_text("calibrated caliper on the image")
    checkpoint("measured")

    page.get_by_label("Depth not measurable because").select_option("shadowing")
    page.get_by_label("Posterior acoustic shadowing").check()
    page.get_by_label("Doppler signal").select_option("none")
    page.get_by_label("Operator").fill("Sam Sonographer")
    expect(page.get_by_label("Ultrasound device")).to_have_value("Philips Medical Systems CX50")
    page.get_by_role("button", name="Save the measurement").click()
    expect(page.get_by_text("Measurement of L1 saved: 26.2 x 15.7 mm")).to_be_visible()
    checkpoint("saved")

    saved = UltrasoundMeasurement.objects.get(lesion=lesion, visit=baseline)
    assert (saved.length_mm, saved.width_mm, saved.depth_mm) == (Decimal("26.2"), Decimal("15.7"), None)
    assert saved.source == MeasurementSource.CALIPER
    assert saved.dicom_file == DicomFile.objects.get() and saved.frame_number == 1
    assert set(saved.caliper_points) == {"length", "width"}
