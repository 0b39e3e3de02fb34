"""Calibrated distances on an ultrasound image, from the Sequence of Ultrasound Regions.

DICOM PS3.3 C.8.5.5: each region has a pixel box (RegionLocationMinX0/MinY0/MaxX1/MaxY1,
inclusive), RegionSpatialFormat, RegionDataType, PhysicalUnitsX/YDirection and
PhysicalDeltaX/Y (physical units per pixel). A length on the image is only meaningful inside a
2D tissue region (data type 1 = tissue, spatial format 1 = 2D) whose units are centimetres
(code 3); ultrasound images normally carry no PixelSpacing (DOMAIN.md s.4).

No database access: the sandbox writes `regions` as the list of dicts `region_dict` returns,
and the web process reads them back from the database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.translation import gettext as _

SPATIAL_FORMAT_2D = 1
DATA_TYPE_TISSUE = 1
UNITS_CM = 3

SPATIAL_FORMATS = {0: "none", 1: "2D", 2: "M-mode", 3: "spectral", 4: "waveform", 5: "graphics"}
DATA_TYPES = {
    0: "none",
    1: "tissue",
    2: "colour flow",
    3: "PW spectral Doppler",
    4: "CW spectral Doppler",
    5: "Doppler mean trace",
    6: "Doppler mode trace",
    7: "Doppler max trace",
    8: "volume trace",
    9: "dV/dt trace",
    10: "ECG trace",
    11: "pulse trace",
    12: "phonocardiogram trace",
    13: "grey bar",
    14: "colour bar",
    15: "integrated backscatter",
    16: "area trace",
    17: "dA/dt",
    18: "other physiological input",
}
UNITS = {
    0: "none",
    1: "percent",
    2: "dB",
    3: "cm",
    4: "s",
    5: "Hz",
    6: "dB/s",
    7: "cm/s",
    8: "cm²",
    9: "cm²/s",
}


class CalibrationError(ValueError):
    """The two points cannot be turned into a calibrated distance; the message says why."""


@dataclass(frozen=True)
class Distance:
    mm: Decimal  # rounded to 0.1 mm, the precision of the measurement form
    mm_exact: float
    region_index: int


def region_dict(index: int, item) -> dict:
    """One item of (0018,6011) as plain JSON values (pydicom Dataset -> dict)."""

    def number(keyword, cast=float):
        value = item.get(keyword)
        if value is None or value == "":
            return None
        result = cast(value)
        # NaN or infinity calibrates nothing, and PostgreSQL's jsonb cannot store it: the region
        # counts as malformed (found by tests/reliability/test_fuzz_dicom.py).
        if not math.isfinite(result):
            raise ValueError(f"{keyword} is not a finite number")
        return result

    spatial = number("RegionSpatialFormat", int)
    data_type = number("RegionDataType", int)
    units_x = number("PhysicalUnitsXDirection", int)
    units_y = number("PhysicalUnitsYDirection", int)
    return {
        "index": index,
        "min_x0": number("RegionLocationMinX0", int),
        "min_y0": number("RegionLocationMinY0", int),
        "max_x1": number("RegionLocationMaxX1", int),
        "max_y1": number("RegionLocationMaxY1", int),
        "spatial_format": spatial,
        "spatial_format_name": SPATIAL_FORMATS.get(spatial, "unknown"),
        "data_type": data_type,
        "data_type_name": DATA_TYPES.get(data_type, "unknown"),
        "units_x": units_x,
        "units_x_name": UNITS.get(units_x, "unknown"),
        "units_y": units_y,
        "units_y_name": UNITS.get(units_y, "unknown"),
        "delta_x": number("PhysicalDeltaX"),
        "delta_y": number("PhysicalDeltaY"),
    }


def is_calibrated_tissue(region: dict) -> bool:
    """A 2D tissue region in centimetres with positive deltas: lengths can be measured in it."""
    return (
        region.get("spatial_format") == SPATIAL_FORMAT_2D
        and region.get("data_type") == DATA_TYPE_TISSUE
        and region.get("units_x") == UNITS_CM
        and region.get("units_y") == UNITS_CM
        and (region.get("delta_x") or 0) > 0
        and (region.get("delta_y") or 0) > 0
        and None not in (region.get(k) for k in ("min_x0", "min_y0", "max_x1", "max_y1"))
    )


def tissue_regions(regions: list[dict]) -> list[dict]:
    return [region for region in regions if is_calibrated_tissue(region)]


def no_calibration_reason(regions: list[dict]) -> str | None:
    """Why this file allows manual entry only, or None when a caliper can be used."""
    if not regions:
        return _("The file has no Sequence of Ultrasound Regions: the scanner wrote no calibration.")
    if not tissue_regions(regions):
        return _("The file has no 2D tissue region calibrated in centimetres.")
    return None


def _contains(region: dict, x: float, y: float) -> bool:
    return region["min_x0"] <= x <= region["max_x1"] and region["min_y0"] <= y <= region["max_y1"]


def distance_mm(regions: list[dict], p1: tuple[float, float], p2: tuple[float, float]) -> Distance:
    """The physical distance between pixel points `p1` and `p2` (x, y; 0-based, may be fractional).

    Both points must lie in the same calibrated 2D tissue region: distance =
    sqrt((dx * PhysicalDeltaX)^2 + (dy * PhysicalDeltaY)^2) cm, times 10 for mm.
    Raises CalibrationError with the reason otherwise."""
    reason = no_calibration_reason(regions)
    if reason:
        raise CalibrationError(reason)
    (x1, y1), (x2, y2) = (float(p1[0]), float(p1[1])), (float(p2[0]), float(p2[1]))
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise CalibrationError(_("The points are not valid pixel positions."))
    for region in tissue_regions(regions):
        if _contains(region, x1, y1) and _contains(region, x2, y2):
            dx_cm = (x2 - x1) * region["delta_x"]
            dy_cm = (y2 - y1) * region["delta_y"]
            exact = math.hypot(dx_cm, dy_cm) * 10
            rounded = Decimal(repr(exact)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
            return Distance(mm=rounded, mm_exact=exact, region_index=region["index"])
    inside = [
        [r["index"] for r in regions if None not in (r.get("min_x0"), r.get("max_y1")) and _contains(r, *p)]
        for p in ((x1, y1), (x2, y2))
    ]
    if inside[0] and inside[1] and set(inside[0]).isdisjoint(inside[1]):
        raise CalibrationError(
            _("The two points are in different regions of the image: place both in the same tissue image.")
        )
    raise CalibrationError(
        _("Both points must be inside the calibrated 2D tissue image (not on a Doppler trace or the margin).")
    )
