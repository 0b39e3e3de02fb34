"""The calibrated caliper: calibration read from the scanner's Sequence of Ultrasound Regions of
the sample files, distances checked by hand, refusals across regions and without calibration."""

from __future__ import annotations

from decimal import Decimal

import pydicom
import pytest
from pydicom.data import get_testdata_file

from lesions.dicom import reading
from lesions.dicom.calibration import CalibrationError, distance_mm, tissue_regions


def regions_of(name: str) -> list[dict]:
    return reading.regions(pydicom.dcmread(get_testdata_file(name)))


def test_palette_sample_has_two_regions_and_one_calibrated_tissue_region():
    regions = regions_of("examples_palette.dcm")
    assert len(regions) == 2
    tissue = tissue_regions(regions)
    assert len(tissue) == 1
    assert tissue[0]["delta_x"] == pytest.approx(0.026229, abs=1e-6)
    assert tissue[0]["delta_y"] == pytest.approx(0.026229, abs=1e-6)
    box = tuple(tissue[0][key] for key in ("min_x0", "min_y0", "max_x1", "max_y1"))
    assert box == (120, 60, 800, 518)  # the box reaches past the 350-row image (DOMAIN.md s.4)
    assert tissue[0]["units_x_name"] == "cm"
    # The second region is a Doppler trace: not a place to measure tissue.
    assert regions[1]["data_type"] == 10 and regions[1]["spatial_format"] == 4


def test_ybr_multiframe_sample_has_one_region_at_0_051050_cm_per_pixel():
    regions = regions_of("examples_ybr_color.dcm")
    assert len(regions) == 1
    assert tissue_regions(regions)[0]["delta_x"] == pytest.approx(0.051050, abs=1e-6)


def test_a_horizontal_caliper_on_the_palette_sample_is_pixels_times_delta():
    regions = regions_of("examples_palette.dcm")
    # 100 px across at 0.02622878766 cm/px = 2.622878766 cm = 26.23 mm -> 26.2 mm on the form.
    distance = distance_mm(regions, (200, 100), (300, 100))
    assert distance.mm_exact == pytest.approx(26.22878766, abs=1e-6)
    assert distance.mm == Decimal("26.2")


def test_a_diagonal_caliper_is_pythagoras_in_centimetres():
    regions = regions_of("examples_palette.dcm")
    # 30 px across and 40 px down: 50 px; 50 x 0.02622878766 cm = 1.311439 cm = 13.1 mm.
    distance = distance_mm(regions, (300, 200), (330, 240))
    assert distance.mm_exact == pytest.approx(13.11439383, abs=1e-6)
    assert distance.mm == Decimal("13.1")


def test_ybr_sample_caliper_uses_its_own_calibration():
    regions = regions_of("examples_ybr_color.dcm")
    # 100 px at 0.05104970559 cm/px = 51.05 mm.
    assert distance_mm(regions, (100, 100), (200, 100)).mm == Decimal("51.0")


def test_points_in_different_regions_are_refused():
    regions = regions_of("examples_palette.dcm")
    with pytest.raises(CalibrationError, match="different regions"):
        distance_mm(regions, (300, 200), (300, 540))  # tissue image -> Doppler trace


def test_points_outside_the_tissue_region_are_refused():
    regions = regions_of("examples_palette.dcm")
    with pytest.raises(CalibrationError, match="inside the calibrated 2D tissue image"):
        distance_mm(regions, (10, 10), (300, 200))


def test_an_uncalibrated_file_allows_manual_entry_only():
    regions = regions_of("ExplVR_BigEnd.dcm")
    assert regions == []
    with pytest.raises(CalibrationError, match="no calibration"):
        distance_mm(regions, (1, 1), (10, 10))
