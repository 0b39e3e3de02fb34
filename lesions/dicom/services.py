"""Ultrasound DICOM workflows: upload to quarantine, processing in the sandbox, and saving a
measurement taken with the calibrated caliper or accepted from a structured report.

The web process only stores raw bytes and computes their SHA-256; every byte of DICOM is parsed
by `lesions.dicom.sandbox` in a child process of the Celery task (`lesions.tasks`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import shutil
import tempfile
import uuid
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lesions.dicom.calibration import CalibrationError, Distance, distance_mm, no_calibration_reason
from lesions.dicom.sandbox import run_sandbox
from lesions.models import (
    DicomFile,
    DicomStatus,
    Lesion,
    MeasurementSource,
    PixelReview,
    UltrasoundMeasurement,
)
from lesions.services import LesionRow, SaveResult, visit_lesions_save
from participants.models import Visit
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context
from trial.locks import require_unlocked
from trial.models import User
from trial.protocol import Form

QUARANTINE_DIR = "dicom/quarantine"
DIMENSIONS = ("length", "width", "depth")


def uid_key() -> bytes:
    """The study's key for replacing DICOM UIDs (settings.DICOM_UID_KEY, else from SECRET_KEY)."""
    configured = settings.DICOM_UID_KEY
    if configured:
        return hashlib.sha256(configured.encode()).digest()
    return hmac.new(settings.SECRET_KEY.encode(), b"dicom-uid-key", hashlib.sha256).digest()


def max_upload_bytes() -> int:
    return settings.DICOM_MAX_UPLOAD_MB * 1024 * 1024


# --- Upload and processing ------------------------------------------------------------------


@transaction.atomic
def dicom_file_upload(*, actor: User | None, lesion: Lesion, visit: Visit, upload: File) -> DicomFile:
    """Keep the raw upload in quarantine and enqueue its processing once committed."""
    participant = visit.participant
    require_site_permission(actor, "lesions.add_dicomfile", participant.site)
    require_unlocked(visit=visit)
    if lesion.participant_id != visit.participant_id:
        raise ValidationError(_("This lesion does not belong to the visit's participant."))
    if Form.MEASUREMENTS not in visit.definition.forms:
        raise ValidationError(_("This visit takes no ultrasound measurements."))
    if upload.size is not None and upload.size > max_upload_bytes():
        raise ValidationError(
            _("%(name)s is larger than %(limit)s MB.")
            % {"name": upload.name, "limit": settings.DICOM_MAX_UPLOAD_MB}
        )
    if not upload.size:
        raise ValidationError(_("%(name)s is empty.") % {"name": upload.name})
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    name = default_storage.save(f"{QUARANTINE_DIR}/{uuid.uuid4().hex}.upload", upload)
    dicom_file = DicomFile(
        lesion=lesion,
        visit=visit,
        uploaded_by=actor,
        original_name=Path(upload.name or "").name[:255],
        size_bytes=upload.size,
        original_sha256=digest.hexdigest(),
        quarantine_path=name,
    )
    with audit_context(reason="ultrasound DICOM file uploaded", **actor_metadata(actor)):
        dicom_file.save()
    from lesions.tasks import dicom_file_process  # the task module imports this one

    pk = dicom_file.pk
    transaction.on_commit(lambda: dicom_file_process.delay(pk))
    return dicom_file


# A pending upload whose processing task has not finished after this long (the task's hard time
# limit plus its retries' back-off) lost its task: the broker was flushed or the worker died.
STUCK_AFTER = dt.timedelta(minutes=15)


def dicom_files_stuck(*, now: dt.datetime | None = None) -> list[int]:
    """Ids of uploads still pending STUCK_AFTER after they were received. Processing is
    idempotent, so enqueueing one whose task is merely slow does no harm."""
    cutoff = (now or timezone.now()) - STUCK_AFTER
    return list(
        DicomFile.objects.filter(status=DicomStatus.PENDING, uploaded_at__lt=cutoff)
        .exclude(quarantine_path="")
        .order_by("uploaded_at")
        .values_list("pk", flat=True)
    )


@transaction.atomic
def dicom_pixel_review(*, actor: User, dicom_file: DicomFile, outcome: str, note: str = "") -> DicomFile:
    """Record a person's check of an image flagged for burned-in annotation. "Clear" lifts the flag
    everywhere the image is shown; "identifying" keeps it, with who judged it and when. The
    header's original flag stays in the audit trail. A new review replaces the last (audited)."""
    require_site_permission(actor, "lesions.review_dicom_pixels", dicom_file.visit.participant.site)
    require_unlocked(visit=dicom_file.visit)
    if outcome not in (PixelReview.CLEAR, PixelReview.IDENTIFYING):
        raise ValidationError(_("Choose what the image shows."))
    locked = DicomFile.objects.select_for_update().get(pk=dicom_file.pk)
    if locked.status != DicomStatus.READY:
        raise ValidationError(_("Only a processed image can be reviewed."))
    if not locked.burned_in_annotation and not locked.pixel_review:
        raise ValidationError(_("This image is not flagged for burned-in text: there is nothing to review."))
    locked.pixel_review = outcome
    locked.burned_in_annotation = outcome == PixelReview.IDENTIFYING
    locked.pixel_reviewed_by = actor
    locked.pixel_reviewed_at = timezone.now()
    reason = f"burned-in text review: {PixelReview(outcome).label}"
    if note.strip():
        reason += f" ({note.strip()[:200]})"
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.save(
            update_fields=["pixel_review", "burned_in_annotation", "pixel_reviewed_by", "pixel_reviewed_at"]
        )
    return locked


def _acquired_at(acquisition: dict, zone: zoneinfo.ZoneInfo) -> dt.datetime | None:
    """The scanner's clock reading as UTC: its own UTC offset if written, else the site's zone."""
    if not acquisition.get("date") or not acquisition.get("time"):
        return None
    naive = dt.datetime.fromisoformat(f"{acquisition['date']}T{acquisition['time']}")
    offset = acquisition.get("utc_offset")
    if offset and len(offset) == 5 and offset[1:].isdigit():
        sign = -1 if offset[0] == "-" else 1
        tz = dt.timezone(sign * dt.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return naive.replace(tzinfo=tz).astimezone(dt.UTC)
    return naive.replace(tzinfo=zone).astimezone(dt.UTC)


def dicom_file_process(*, dicom_file_id: int) -> DicomFile:
    """Run the sandbox on a pending upload, keep the de-identified file and the previews (or the
    reason for refusal), and delete the raw bytes. Idempotent: a processed file is left alone."""
    dicom_file = DicomFile.objects.select_related("visit__participant__site").get(pk=dicom_file_id)
    if dicom_file.status != DicomStatus.PENDING:
        return dicom_file
    participant = dicom_file.visit.participant
    work = Path(tempfile.mkdtemp(prefix="edc-dicom-"))
    try:
        raw = work / "upload.bin"
        with default_storage.open(dicom_file.quarantine_path, "rb") as source, raw.open("wb") as target:
            shutil.copyfileobj(source, target)
        if hashlib.sha256(raw.read_bytes()).hexdigest() != dicom_file.original_sha256:
            outcome = None
            reason = _("The stored upload does not match what was received: upload it again.")
        else:
            outcome = run_sandbox(raw, work / "out", key=uid_key(), pseudonym=participant.study_id)
            reason = outcome.reason
        stored: list[str] = []
        folder = f"dicom/{participant.pk}/{dicom_file.visit_id}/{dicom_file.pk}"
        if outcome is not None and outcome.accepted:
            stored.append(
                default_storage.save(
                    f"{folder}/deidentified.dcm", ContentFile(outcome.deidentified.read_bytes())
                )
            )
            for frame in outcome.frames:
                stored.append(default_storage.save(f"{folder}/{frame.name}", ContentFile(frame.read_bytes())))
        with transaction.atomic():
            locked = DicomFile.objects.select_for_update().get(pk=dicom_file.pk)
            if locked.status != DicomStatus.PENDING:  # processed meanwhile by a redelivery
                for name in stored:
                    default_storage.delete(name)
                return locked
            if outcome is not None and outcome.accepted:
                _apply_metadata(locked, outcome.metadata, participant.site.zone)
                locked.deidentified_path = stored[0]
                locked.preview_paths = stored[1:]
                locked.status = DicomStatus.READY
                why = "ultrasound DICOM file de-identified and ready"
            else:
                locked.status = DicomStatus.REJECTED
                locked.rejection_reason = reason[:500]
                why = "ultrasound DICOM file rejected"
            quarantined, locked.quarantine_path = locked.quarantine_path, ""
            with audit_context(reason=why):
                locked.save()
            transaction.on_commit(lambda: default_storage.delete(quarantined))
        return locked
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _apply_metadata(dicom_file: DicomFile, facts: dict, zone: zoneinfo.ZoneInfo) -> None:
    acquisition = facts.get("acquisition") or {}
    dicom_file.sop_class_uid = facts["sop_class_uid"][:64]
    dicom_file.sop_class_name = facts["sop_class_name"][:100]
    dicom_file.manufacturer = facts["manufacturer"][:200]
    dicom_file.model_name = facts["model_name"][:200]
    dicom_file.acquired_on = dt.date.fromisoformat(acquisition["date"]) if acquisition.get("date") else None
    dicom_file.acquired_at = _acquired_at(acquisition, zone)
    dicom_file.frame_count = facts["frame_count"]
    dicom_file.rows, dicom_file.columns = facts["rows"], facts["columns"]
    dicom_file.regions = facts["regions"]
    dicom_file.burned_in_annotation = facts["burned_in_annotation"]
    dicom_file.sr_measurements = facts["sr_measurements"]
    # "Not the visit date" is worked out when shown (acquisition_warning): the visit date may be
    # recorded after the upload.
    warnings = list(facts.get("warnings", []))
    if not dicom_file.acquired_on:
        warnings.append(_("The file carries no acquisition date."))
    dicom_file.warnings = warnings


def acquisition_warning(dicom_file: DicomFile) -> str | None:
    """'Not the visit date' once the visit date is known (it may be recorded after the upload)."""
    visit_day = dicom_file.visit.visit_date
    if dicom_file.acquired_on and visit_day and dicom_file.acquired_on != visit_day:
        return _("Acquired on %(acquired)s, not on the visit date %(visit)s.") % {
            "acquired": dicom_file.acquired_on.isoformat(),
            "visit": visit_day.isoformat(),
        }
    return None


# --- The caliper and the measurement ---------------------------------------------------------


def _point(value: Any) -> tuple[float, float]:
    try:
        x, y = value
        return float(x), float(y)
    except (TypeError, ValueError, OverflowError) as exc:  # OverflowError: an int past any float
        raise CalibrationError(_("A caliper point is not an (x, y) pixel position.")) from exc


def caliper_distances(
    *, dicom_file: DicomFile, frame_number: int, points: dict[str, Any]
) -> dict[str, Distance]:
    """Millimetres per dimension ("length", "width", "depth") from two pixel points each, on
    frame `frame_number` (1-based) of a ready image. Raises CalibrationError with the reason."""
    if dicom_file.status != DicomStatus.READY or not dicom_file.is_image:
        raise CalibrationError(_("This file has no image to measure on."))
    reason = no_calibration_reason(dicom_file.regions)
    if reason:
        raise CalibrationError(reason + " " + _("Enter the measurement by hand."))
    if not 1 <= frame_number <= len(dicom_file.preview_paths):
        raise CalibrationError(_("There is no frame %(n)s in this file.") % {"n": frame_number})
    distances = {}
    for name, pair in points.items():
        if name not in DIMENSIONS:
            raise CalibrationError(_("Unknown dimension %(name)s.") % {"name": name})
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise CalibrationError(_("Place two points for the %(name)s.") % {"name": _(name)})
        first, second = _point(pair[0]), _point(pair[1])
        for x, y in (first, second):
            if not (0 <= x < dicom_file.columns and 0 <= y < dicom_file.rows):
                raise CalibrationError(_("A point is outside the image."))
        try:
            distances[name] = distance_mm(dicom_file.regions, first, second)
        except CalibrationError as exc:
            raise CalibrationError(f"{_(name).capitalize()}: {exc}") from exc
    return distances


@dataclass
class DicomMeasurement:
    """What the measurement form on the image page hands over."""

    values: dict[str, Any]  # the measurement fields of lesions.services.MEASUREMENT_FIELDS
    source: str  # MeasurementSource
    frame_number: int | None = None
    points: dict[str, Any] | None = None


def dicom_measurement_save(
    *,
    actor: User | None,
    dicom_file: DicomFile,
    measurement: DicomMeasurement,
    version: int | None,
    reason: str = "",
) -> SaveResult:
    """Save the lesion's measurement at the file's visit with its provenance, through the same
    service as the visit table. Caliper millimetres are recomputed here from the points (the
    browser's numbers are never trusted)."""
    values = dict(measurement.values)
    provenance: dict[str, Any] = {
        "source": measurement.source,
        "dicom_file": dicom_file,
        "frame_number": None,
        "caliper_points": {},
    }
    if measurement.source == MeasurementSource.CALIPER:
        points = {name: pair for name, pair in (measurement.points or {}).items() if pair}
        if not {"length", "width"} <= set(points):
            raise ValidationError(_("Place two points for the length and two for the width."))
        if "depth" in points and not values.get("depth_mm") and values.get("depth_not_measurable_reason"):
            raise ValidationError(_("Depth is marked not measurable: remove its caliper points."))
        try:
            distances = caliper_distances(
                dicom_file=dicom_file, frame_number=measurement.frame_number or 0, points=points
            )
        except CalibrationError as exc:
            raise ValidationError(str(exc)) from exc
        for name, distance in distances.items():
            values[f"{name}_mm"] = distance.mm
        provenance["frame_number"] = measurement.frame_number
        provenance["caliper_points"] = {
            name: [[round(float(x), 1), round(float(y), 1)] for x, y in pair] for name, pair in points.items()
        }
    elif measurement.source == MeasurementSource.STRUCTURED_REPORT:
        proposed = {
            Decimal(str(item["mm"])).quantize(Decimal("0.1"))
            for item in dicom_file.sr_measurements
            if item.get("mm")
        }
        for name in ("length_mm", "width_mm", "depth_mm"):
            if values.get(name) is not None and Decimal(values[name]) not in proposed:
                raise ValidationError(
                    _("%(field)s is not one of the structured report's values; choose manual entry instead.")
                    % {"field": UltrasoundMeasurement._meta.get_field(name).verbose_name}
                )
    else:
        provenance.update(source=MeasurementSource.MANUAL, dicom_file=None)
    if values.get("depth_mm") is not None:
        values["depth_not_measurable_reason"] = ""
    values.update(provenance)
    lesion = dicom_file.lesion
    return visit_lesions_save(
        actor=actor,
        visit=dicom_file.visit,
        rows=[LesionRow(lesion=lesion, measurement=values, measurement_version=version)],
        reason=reason,
    )
