"""Ultrasound measurements and STS injections, per lesion per visit (DOMAIN.md s.3-4)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Greatest
from django.utils.translation import gettext_lazy as _

from lesions.models.lesion import Lesion
from participants.models import Participant, Visit
from trial.audit import audited
from trial.check_constraints import CheckConstraintsInPython
from trial.concurrency import row_version_field

# Prolate ellipsoid: V = pi/6 x L x W x D (DOMAIN.md s.4).
PI_OVER_6 = Decimal("0.523598775598")
MAX_DIMENSION_MM = Decimal("200")


class DepthNotMeasurableReason(models.TextChoices):
    ACOUSTIC_SHADOWING = "shadowing", _("Posterior acoustic shadowing hides the deep border")
    OTHER = "other", _("Other")


class DopplerSignal(models.TextChoices):
    NONE = "none", _("None")
    MINIMAL = "minimal", _("Minimal")
    MODERATE = "moderate", _("Moderate")
    MARKED = "marked", _("Marked")


def _dimension(label):
    return models.DecimalField(
        label,
        max_digits=5,
        decimal_places=1,
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(MAX_DIMENSION_MM)],
    )


class MeasurementSource(models.TextChoices):
    MANUAL = "manual", _("Entered by hand")
    CALIPER = "caliper", _("Calibrated caliper on the DICOM image")
    STRUCTURED_REPORT = "sr", _("DICOM structured report")


class MeasurementQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))


@audited
class UltrasoundMeasurement(CheckConstraintsInPython, models.Model):
    lesion = models.ForeignKey(
        Lesion, on_delete=models.PROTECT, related_name="measurements", verbose_name=_("lesion")
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="measurements", verbose_name=_("visit")
    )
    length_mm = _dimension(_("length (mm)"))
    width_mm = _dimension(_("width (mm)"))
    depth_mm = models.DecimalField(
        _("depth (mm)"),
        max_digits=5,
        decimal_places=1,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.1")), MaxValueValidator(MAX_DIMENSION_MM)],
    )
    depth_not_measurable_reason = models.CharField(
        _("depth not measurable because"), max_length=10, choices=DepthNotMeasurableReason.choices, blank=True
    )
    posterior_shadowing = models.BooleanField(_("posterior acoustic shadowing"), default=False)
    overlying_ulceration = models.BooleanField(_("skin ulceration over the lesion"), default=False)
    doppler_signal = models.CharField(_("Doppler signal"), max_length=10, choices=DopplerSignal.choices)
    operator = models.CharField(_("operator"), max_length=200)
    device = models.CharField(_("ultrasound device"), max_length=200, help_text=_("Manufacturer and model."))
    longest_diameter_mm = models.GeneratedField(
        expression=Greatest("length_mm", "width_mm"),
        output_field=models.DecimalField(max_digits=5, decimal_places=1),
        db_persist=True,
        verbose_name=_("longest diameter (mm)"),
    )
    volume_mm3 = models.GeneratedField(
        expression=models.F("length_mm")
        * models.F("width_mm")
        * models.F("depth_mm")
        * models.Value(PI_OVER_6),
        output_field=models.DecimalField(max_digits=12, decimal_places=1),
        db_persist=True,
        verbose_name=_("volume (mm³, pi/6 x L x W x D)"),
    )
    # Provenance: where the numbers came from, so anyone can reproduce them (issue #6).
    source = models.CharField(
        _("source"), max_length=10, choices=MeasurementSource.choices, default=MeasurementSource.MANUAL
    )
    dicom_file = models.ForeignKey(
        "lesions.DicomFile",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="measurements",
        verbose_name=_("DICOM file measured"),
    )
    frame_number = models.PositiveIntegerField(_("frame measured (1 = first)"), null=True, blank=True)
    caliper_points = models.JSONField(
        _("caliper points (pixels)"),
        default=dict,
        blank=True,
        help_text=_('Per dimension, two [x, y] pixel points: {"length": [[x1, y1], [x2, y2]], ...}.'),
    )
    row_version = row_version_field()

    objects = MeasurementQuerySet.as_manager()

    class Meta:
        ordering = ["visit__sequence", "lesion__label"]
        verbose_name = _("ultrasound measurement")
        verbose_name_plural = _("ultrasound measurements")
        constraints = [
            models.UniqueConstraint(fields=["lesion", "visit"], name="one_measurement_per_lesion_visit"),
            models.CheckConstraint(
                condition=models.Q(length_mm__gt=0, length_mm__lte=200, width_mm__gt=0, width_mm__lte=200),
                name="measurement_dimensions_plausible",
            ),
            # Depth is a number, or "not measurable" with the reason - never both, never neither.
            models.CheckConstraint(
                condition=(
                    models.Q(depth_mm__isnull=False, depth_mm__gt=0, depth_mm__lte=200)
                    & models.Q(depth_not_measurable_reason="")
                )
                | (models.Q(depth_mm__isnull=True) & ~models.Q(depth_not_measurable_reason="")),
                name="depth_or_reason",
            ),
            # A caliper measurement names the file and frame its points were placed on.
            models.CheckConstraint(
                condition=~models.Q(source="caliper")
                | models.Q(dicom_file__isnull=False, frame_number__isnull=False),
                name="caliper_measurement_names_file_and_frame",
            ),
            models.CheckConstraint(
                condition=~models.Q(source="sr") | models.Q(dicom_file__isnull=False),
                name="sr_measurement_names_file",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lesion.label} at {self.visit.code}"

    def get_absolute_url(self) -> str:
        return self.visit.get_absolute_url()


class Concentration(models.TextChoices):
    MG_250 = "250", _("250 mg/mL")
    MG_150 = "150", _("150 mg/mL")


class NeedleGauge(models.IntegerChoices):
    G22 = 22, "22G"
    G25 = 25, "25G"
    G27 = 27, "27G"
    G30 = 30, "30G"


class ImmediateComplication(models.TextChoices):
    BURNING_PAIN = "burning_pain", _("Burning or pain at injection beyond the expected")
    BLEEDING = "bleeding", _("Bleeding")
    VASOVAGAL = "vasovagal", _("Vasovagal reaction")
    DIFFICULT_PASSAGE = "difficult_passage", _("Difficult needle passage through dense deposit")
    EXTRAVASATION = "extravasation", _("Leak of injectate onto the skin")
    OTHER = "other", _("Other (describe)")


class InjectionQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))


@audited
class Injection(CheckConstraintsInPython, models.Model):
    lesion = models.ForeignKey(
        Lesion, on_delete=models.PROTECT, related_name="injections", verbose_name=_("lesion")
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="injections", verbose_name=_("visit")
    )
    concentration_mg_per_ml = models.DecimalField(
        _("STS concentration (mg/mL)"), max_digits=5, decimal_places=1
    )
    volume_ml = models.DecimalField(
        _("volume injected (mL)"),
        max_digits=4,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"))],
    )
    dose_mg = models.GeneratedField(
        expression=models.F("concentration_mg_per_ml") * models.F("volume_ml"),
        output_field=models.DecimalField(max_digits=9, decimal_places=2),
        db_persist=True,
        verbose_name=_("dose (mg)"),
    )
    local_anaesthetic_mixed = models.BooleanField(_("local anaesthetic mixed in"), default=False)
    needle_gauge = models.PositiveSmallIntegerField(_("needle gauge"), choices=NeedleGauge.choices)
    ultrasound_guided = models.BooleanField(_("ultrasound guidance confirmed"), default=False)
    immediate_pain = models.PositiveSmallIntegerField(
        _("immediate pain (0-10)"), validators=[MaxValueValidator(10)]
    )
    immediate_complications = ArrayField(
        models.CharField(max_length=20, choices=ImmediateComplication.choices),
        default=list,
        blank=True,
        verbose_name=_("immediate complications"),
    )
    complication_detail = models.CharField(_("complication details"), max_length=300, blank=True)
    row_version = row_version_field()

    objects = InjectionQuerySet.as_manager()

    class Meta:
        ordering = ["visit__sequence", "lesion__label"]
        verbose_name = _("STS injection")
        verbose_name_plural = _("STS injections")
        constraints = [
            models.UniqueConstraint(fields=["lesion", "visit"], name="one_injection_per_lesion_visit"),
            models.CheckConstraint(condition=models.Q(volume_ml__gt=0), name="injection_volume_positive"),
            models.CheckConstraint(condition=models.Q(immediate_pain__lte=10), name="immediate_pain_0_10"),
            # The protocol's guidance: every injection is ultrasound-guided.
            models.CheckConstraint(
                condition=models.Q(ultrasound_guided=True), name="injection_ultrasound_guided"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.lesion.label} at {self.visit.code}: {self.volume_ml} mL"

    def get_absolute_url(self) -> str:
        return self.visit.get_absolute_url()
