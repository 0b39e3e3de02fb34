"""What the EDC reads from an ultrasound DICOM file: is it acceptable, and its facts.

Runs inside the sandbox (`lesions.dicom.sandbox`) on untrusted data: every value read is
validated and turned into plain JSON types; anything malformed becomes a `Refusal` with a reason
a coordinator can act on.
"""

from __future__ import annotations

import datetime as dt
import re

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    MediaStorageDirectoryStorage,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from lesions.dicom.calibration import region_dict

# Accepted storage classes. The retired ultrasound classes (PS3.6 Annex A) are still written by
# older scanners; pydicom's own multi-frame sample uses 1.2.840.10008.5.1.4.1.1.3.1.
ULTRASOUND_IMAGE_CLASSES = {
    str(UltrasoundImageStorage): "Ultrasound Image Storage",
    str(UltrasoundMultiFrameImageStorage): "Ultrasound Multi-frame Image Storage",
    "1.2.840.10008.5.1.4.1.1.6": "Ultrasound Image Storage (retired)",
    "1.2.840.10008.5.1.4.1.1.3": "Ultrasound Multi-frame Image Storage (retired)",
    "1.2.840.10008.5.1.4.1.1.3.1": "Ultrasound Multi-frame Image Storage (retired)",
}
# Structured reports: every SR storage class is 1.2.840.10008.5.1.4.1.1.88.<n>.
SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88."

MAX_SEQUENCE_DEPTH = 12
MAX_FRAMES = 2000
MAX_PIXELS = 400_000_000  # rows x columns x frames x samples: ~400 MB decoded at 8 bits


class Refusal(Exception):
    """The file is not accepted; str(exc) is the reason shown to the user."""


def sequence_depth(ds: Dataset, limit: int = MAX_SEQUENCE_DEPTH) -> int:
    """How deeply sequences nest in `ds` (iteratively, so a hostile file cannot blow the stack)."""
    deepest = 0
    stack = [(ds, 0)]
    while stack:
        dataset, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        for element in dataset:  # iterating converts raw elements, so sequences are parsed
            if element.VR == "SQ" and isinstance(element.value, Sequence):
                stack.extend((item, depth + 1) for item in element.value)
    return deepest


def classify(ds: Dataset) -> str:
    """'image' or 'sr', or raise Refusal naming what the file is."""
    meta = getattr(ds, "file_meta", None)
    media_class = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    sop_class = str(ds.get("SOPClassUID", "") or media_class)
    if media_class == MediaStorageDirectoryStorage or sop_class == MediaStorageDirectoryStorage:
        raise Refusal(
            "This is a DICOMDIR (a media directory), not an image: upload the image files themselves."
        )
    if sequence_depth(ds) > MAX_SEQUENCE_DEPTH:
        raise Refusal(f"Sequences are nested more than {MAX_SEQUENCE_DEPTH} levels deep: refused as hostile.")
    if sop_class in ULTRASOUND_IMAGE_CLASSES:
        if "PixelData" not in ds:
            raise Refusal("The ultrasound file has no image (no pixel data).")
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        frames = frame_count(ds)
        samples = int(ds.get("SamplesPerPixel") or 1)
        if rows <= 0 or columns <= 0:
            raise Refusal("The image has no valid size (rows/columns).")
        if frames > MAX_FRAMES or rows * columns * frames * samples > MAX_PIXELS:
            raise Refusal(f"The image is too large ({columns} x {rows} pixels, {frames} frames): refused.")
        return "image"
    if sop_class.startswith(SR_CLASS_PREFIX):
        return "sr"
    modality = str(ds.get("Modality", "") or "unknown")
    name = getattr(ds.get("SOPClassUID"), "name", "") or sop_class or "no SOP class"
    raise Refusal(
        f"Not an ultrasound image or structured report: {name} (modality {modality}). "
        "Only ultrasound images, multi-frame ultrasound and structured reports are accepted."
    )


def frame_count(ds: Dataset) -> int:
    try:
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError) as exc:
        raise Refusal("The number of frames is not a number.") from exc
    if frames < 1:
        raise Refusal("The number of frames is not valid.")
    return frames


def _date(value) -> str | None:
    digits = re.sub(r"[^0-9]", "", str(value or ""))[:8]
    try:
        return dt.datetime.strptime(digits, "%Y%m%d").date().isoformat() if len(digits) == 8 else None
    except ValueError:
        return None


def _time(value) -> str | None:
    text = str(value or "").replace(":", "")
    match = re.match(r"^(\d{2})(\d{2})?(\d{2})?", text)
    if not match:
        return None
    hour, minute, second = (int(part or 0) for part in match.groups())
    if hour > 23 or minute > 59 or second > 60:
        return None
    return f"{hour:02d}:{minute:02d}:{min(second, 59):02d}"


def acquisition(ds: Dataset) -> dict:
    """The acquisition date and time as the scanner wrote them (its local clock), or the
    content/study date when the acquisition is missing."""
    acquired = str(ds.get("AcquisitionDateTime", "") or "")
    if acquired:
        date, time = _date(acquired[:8]), _time(acquired[8:14])
        offset = re.search(r"[+-]\d{4}$", acquired)
        if date:
            return {"date": date, "time": time, "utc_offset": offset.group(0) if offset else None}
    for date_key, time_key in (
        ("AcquisitionDate", "AcquisitionTime"),
        ("ContentDate", "ContentTime"),
        ("StudyDate", "StudyTime"),
    ):
        date = _date(ds.get(date_key))
        if date:
            offset = str(ds.get("TimezoneOffsetFromUTC", "") or "") or None
            return {"date": date, "time": _time(ds.get(time_key)), "utc_offset": offset}
    return {"date": None, "time": None, "utc_offset": None}


def _text(ds: Dataset, keyword: str, limit: int = 200) -> str:
    value = ds.get(keyword)
    return str(value if value is not None else "").strip()[:limit]


def regions(ds: Dataset) -> list[dict]:
    sequence = ds.get("SequenceOfUltrasoundRegions") or []
    out = []
    for index, item in enumerate(sequence):
        try:
            out.append(region_dict(index, item))
        except (TypeError, ValueError):
            continue  # a malformed region gives no calibration; the others still count
    return out


# Units of a NUM item (UCUM codes) that convert to millimetres.
_TO_MM = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}


def sr_measurements(ds: Dataset, limit: int = 200) -> list[dict]:
    """Numeric content items (TID 1500 NUM: MeasuredValueSequence + MeasurementUnitsCodeSequence)
    as proposed values: concept, value, units, and the value in mm when the units are a length."""
    found: list[dict] = []
    stack = [(item, 0) for item in reversed(ds.get("ContentSequence") or [])]
    while stack and len(found) < limit:
        item, depth = stack.pop()
        if depth > MAX_SEQUENCE_DEPTH:
            continue
        if str(item.get("ValueType", "")) == "NUM" and item.get("MeasuredValueSequence"):
            measured = item.MeasuredValueSequence[0]
            try:
                value = float(measured.get("NumericValue"))
            except (TypeError, ValueError):
                value = None
            units = (measured.get("MeasurementUnitsCodeSequence") or [None])[0]
            concept = (item.get("ConceptNameCodeSequence") or [None])[0]
            unit_code = str(units.get("CodeValue", "")) if units is not None else ""
            if value is not None:
                factor = _TO_MM.get(unit_code)
                found.append(
                    {
                        "concept": str(concept.get("CodeMeaning", "")) if concept is not None else "",
                        "value": value,
                        "units": unit_code,
                        "units_meaning": str(units.get("CodeMeaning", "")) if units is not None else "",
                        "mm": round(value * factor, 3) if factor else None,
                    }
                )
        children = item.get("ContentSequence") or []
        stack.extend((child, depth + 1) for child in reversed(children))
    return found


def metadata(ds: Dataset, kind: str) -> dict:
    """The facts the EDC stores about an accepted file (plain JSON)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    is_image = kind == "image"
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").upper()
    return {
        "kind": kind,
        "sop_class_uid": sop_class,
        "sop_class_name": ULTRASOUND_IMAGE_CLASSES.get(sop_class)
        or getattr(ds.get("SOPClassUID"), "name", "")
        or sop_class,
        "manufacturer": _text(ds, "Manufacturer"),
        "model_name": _text(ds, "ManufacturerModelName"),
        "acquisition": acquisition(ds),
        "frame_count": frame_count(ds) if is_image else 0,
        "rows": int(ds.get("Rows") or 0) if is_image else 0,
        "columns": int(ds.get("Columns") or 0) if is_image else 0,
        "regions": regions(ds) if is_image else [],
        # PS3.15 Annex E: burned-in text survives header de-identification. Ultrasound images
        # nearly always carry it (the scanner's banner), whatever the tag says: review them all.
        "burned_in_annotation": is_image or burned_in == "YES",
        "burned_in_annotation_tag": burned_in,
        "sr_measurements": sr_measurements(ds) if kind == "sr" else [],
    }
