"""Ultrasound DICOM files attached to a lesion's measurement at a visit (DOMAIN.md s.4, s.8).

An upload is stored as raw bytes in a quarantine path and parsed by a task in a sandboxed child
process (`lesions.dicom.sandbox`). Only the de-identified file (DICOM PS3.15 Annex E basic
profile) is kept, with the SHA-256 of the original; the raw bytes are deleted once processed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from lesions.models.lesion import Lesion
from participants.models import Participant, Visit
from trial.audit import audited


class DicomStatus(models.TextChoices):
    PENDING = "pending", _("Being checked")
    READY = "ready", _("Ready")
    REJECTED = "rejected", _("Rejected")


class PixelReview(models.TextChoices):
    """A person's check of an image flagged for burned-in annotation (the header is de-identified
    by the sandbox; text written into the pixels can only be judged by looking)."""

    NOT_REVIEWED = "", _("Not reviewed")
    CLEAR = "clear", _("No identifying text in the image")
    IDENTIFYING = "identifying", _("Identifying text is visible: keep within the site")


class DicomFileQuerySet(models.QuerySet):
    def visible_to(self, user) -> DicomFileQuerySet:
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))


@audited
class DicomFile(models.Model):
    lesion = models.ForeignKey(
        Lesion, on_delete=models.PROTECT, related_name="dicom_files", verbose_name=_("lesion")
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="dicom_files", verbose_name=_("visit")
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("uploaded by")
    )
    uploaded_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    original_name = models.CharField(_("file name as uploaded"), max_length=255, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size of the upload (bytes)"))
    status = models.CharField(
        _("status"), max_length=10, choices=DicomStatus.choices, default=DicomStatus.PENDING
    )
    rejection_reason = models.CharField(_("why it was rejected"), max_length=500, blank=True)
    original_sha256 = models.CharField(_("SHA-256 of the original file"), max_length=64)
    # Raw upload awaiting the sandbox; emptied once processed (the original is never kept).
    quarantine_path = models.CharField(_("quarantine path"), max_length=255, blank=True)
    # Storage names (default storage) of the de-identified file and the PNG preview per frame.
    deidentified_path = models.CharField(_("de-identified file"), max_length=255, blank=True)
    preview_paths = models.JSONField(_("preview image per frame"), default=list, blank=True)
    sop_class_uid = models.CharField(_("SOP class UID"), max_length=64, blank=True)
    sop_class_name = models.CharField(_("SOP class"), max_length=100, blank=True)
    manufacturer = models.CharField(_("manufacturer"), max_length=200, blank=True)
    model_name = models.CharField(_("model"), max_length=200, blank=True)
    acquired_at = models.DateTimeField(_("acquisition date and time"), null=True, blank=True)
    acquired_on = models.DateField(_("acquisition date"), null=True, blank=True)
    frame_count = models.PositiveIntegerField(_("number of frames"), default=0)
    columns = models.PositiveIntegerField(_("image width (pixels)"), default=0)
    rows = models.PositiveIntegerField(_("image height (pixels)"), default=0)
    regions = models.JSONField(_("ultrasound regions (calibration)"), default=list, blank=True)
    burned_in_annotation = models.BooleanField(
        _("may have burned-in annotation"),
        default=False,
        help_text=_("Text burned into the pixels may identify the patient: a reviewer checks it."),
    )
    pixel_review = models.CharField(
        _("burned-in text review"), max_length=12, choices=PixelReview.choices, blank=True, default=""
    )
    pixel_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("burned-in text reviewed by"),
    )
    pixel_reviewed_at = models.DateTimeField(_("burned-in text reviewed at"), null=True, blank=True)
    sr_measurements = models.JSONField(_("structured report measurements"), default=list, blank=True)
    warnings = models.JSONField(_("warnings"), default=list, blank=True)

    objects = DicomFileQuerySet.as_manager()

    class Meta:
        ordering = ["uploaded_at", "pk"]
        verbose_name = _("ultrasound DICOM file")
        verbose_name_plural = _("ultrasound DICOM files")
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="rejected") | ~models.Q(rejection_reason=""),
                name="dicom_rejection_has_reason",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="ready") | ~models.Q(deidentified_path=""),
                name="dicom_ready_is_deidentified",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    pixel_review="", pixel_reviewed_by__isnull=True, pixel_reviewed_at__isnull=True
                )
                | (
                    models.Q(pixel_review__in=["clear", "identifying"], status="ready")
                    & models.Q(pixel_reviewed_by__isnull=False, pixel_reviewed_at__isnull=False)
                ),
                name="dicom_pixel_review_is_complete",
            ),
            # An image judged clear no longer carries the flag; one with identifying text keeps it.
            models.CheckConstraint(
                condition=~models.Q(pixel_review="clear", burned_in_annotation=True)
                & ~models.Q(pixel_review="identifying", burned_in_annotation=False),
                name="dicom_pixel_review_sets_the_flag",
            ),
        ]
        permissions = [
            ("review_dicom_pixels", _("Can review ultrasound images for burned-in identifying text")),
        ]

    def __str__(self) -> str:
        return f"{self.original_name or 'DICOM'} ({self.lesion.label} at {self.visit.code})"

    @property
    def is_image(self) -> bool:
        return bool(self.preview_paths)

    @property
    def device(self) -> str:
        return " ".join(part for part in (self.manufacturer, self.model_name) if part)

    def tissue_regions(self) -> list[dict]:
        from lesions.dicom.calibration import tissue_regions

        return tissue_regions(self.regions)
