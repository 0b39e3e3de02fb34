"""The per-participant lesion registry (DOMAIN.md s.4)."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Cast, JSONObject
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models import Participant
from trial.audit import audited
from trial.check_constraints import CheckConstraintsInPython
from trial.concurrency import row_version_field


class AnatomicalSite(models.TextChoices):
    HAND_DIGIT = "hand_digit", _("Hand: finger or thumb")
    HAND_OTHER = "hand_other", _("Hand: palm or back of hand")
    WRIST = "wrist", _("Wrist")
    FOREARM = "forearm", _("Forearm")
    ELBOW = "elbow", _("Elbow")
    KNEE = "knee", _("Knee")
    LEG = "leg", _("Leg")
    BUTTOCK = "buttock", _("Buttock")
    TRUNK = "trunk", _("Trunk")
    OTHER = "other", _("Other (describe)")


class Digit(models.TextChoices):
    THUMB = "thumb", _("Thumb")
    INDEX = "index", _("Index finger")
    MIDDLE = "middle", _("Middle finger")
    RING = "ring", _("Ring finger")
    LITTLE = "little", _("Little finger")


class Phalanx(models.TextChoices):
    PROXIMAL = "proximal", _("Proximal phalanx")
    MIDDLE = "middle", _("Middle phalanx")
    DISTAL = "distal", _("Distal phalanx (fingertip)")


class Laterality(models.TextChoices):
    LEFT = "left", _("Left")
    RIGHT = "right", _("Right")
    MIDLINE = "midline", _("Midline")


def _present_on(day) -> models.Q:
    return models.Q(first_seen_on__lte=day) & (
        models.Q(resolved_on__isnull=True) | models.Q(resolved_on__gt=day)
    )


class LesionQuerySet(models.QuerySet):
    def visible_to(self, user) -> LesionQuerySet:
        return self.filter(participant__in=Participant.objects.visible_to(user))

    def active_on(self, day) -> LesionQuerySet:
        """Lesions present on a day: first seen by then and not yet resolved."""
        return self.filter(_present_on(day))

    def with_records_at(self, visit) -> LesionQuerySet:
        """Each lesion with its measurement and its injection at `visit` as `measurement_at_visit`
        and `injection_at_visit`, read in the same statement: a lesion has at most one of each
        per visit (unique constraints), so rows do not multiply. Where there is none, Django
        leaves the attribute unset: read it with `getattr(lesion, name, None)`."""
        return self.annotate(
            measurement_at_visit=models.FilteredRelation(
                "measurements", condition=models.Q(measurements__visit=visit)
            ),
            injection_at_visit=models.FilteredRelation(
                "injections", condition=models.Q(injections__visit=visit)
            ),
        ).select_related("measurement_at_visit", "injection_at_visit")

    def with_previous_measurement(self, visit) -> LesionQuerySet:
        """Each lesion's last measurement before `visit` (in visit order) as `previous_measurement`,
        in the same statement: {"length_mm", "width_mm", "depth_mm": text or None, "visit": its
        visit's code}, or None where there is none. What the visit table shows to compare with
        and its plausibility warnings compare against (`lesions.services.previous_measurement`)."""
        from lesions.models.ultrasound import UltrasoundMeasurement

        def text(name):
            return Cast(name, models.TextField())  # a decimal as its exact digits, not a float

        last = (
            UltrasoundMeasurement.objects.filter(
                lesion=models.OuterRef("pk"),
                # The participant's earlier visits (an index scan), not every visit of the study.
                visit__participant_id=visit.participant_id,
                visit__sequence__lt=visit.sequence,
            )
            .order_by("-visit__sequence")
            .values(
                json=JSONObject(
                    length_mm=text("length_mm"),
                    width_mm=text("width_mm"),
                    depth_mm=text("depth_mm"),
                    visit=models.F("visit__code"),
                )
            )[:1]
        )
        return self.annotate(previous_measurement=models.Subquery(last, output_field=models.JSONField()))

    def in_visit_table(self, visit, day) -> LesionQuerySet:
        """The rows of a visit's measurement + injection table: the participant's lesions present
        on `day` or with a record at `visit`, each with those records (`with_records_at`) and its
        last earlier measurement (`with_previous_measurement`). One statement."""
        return (
            self.filter(participant_id=visit.participant_id)
            .with_records_at(visit)
            .with_previous_measurement(visit)
            .filter(
                _present_on(day)
                | models.Q(measurement_at_visit__isnull=False)
                | models.Q(injection_at_visit__isnull=False)
            )
        )


@audited
class Lesion(CheckConstraintsInPython, models.Model):
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="lesions", verbose_name=_("participant")
    )
    label = models.CharField(
        _("label"), max_length=20, help_text=_("Short name used on every visit, e.g. L1.")
    )
    anatomical_site = models.CharField(_("anatomical site"), max_length=12, choices=AnatomicalSite.choices)
    digit = models.CharField(_("digit"), max_length=8, choices=Digit.choices, blank=True)
    phalanx = models.CharField(_("phalanx"), max_length=8, choices=Phalanx.choices, blank=True)
    laterality = models.CharField(_("side"), max_length=8, choices=Laterality.choices)
    site_detail = models.CharField(
        _("site description"),
        max_length=200,
        blank=True,
        help_text=_("Required for 'other'; optional otherwise."),
    )
    is_target = models.BooleanField(_("target lesion"), default=False)
    first_seen_on = models.DateField(_("date first seen"))
    resolved_on = models.DateField(_("date resolved"), null=True, blank=True)
    # Two people correcting the same lesion: the second is told, never overwrites (trial.concurrency).
    row_version = row_version_field()

    objects = LesionQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "label"]
        verbose_name = _("lesion")
        verbose_name_plural = _("lesions")
        constraints = [
            models.UniqueConstraint(fields=["participant", "label"], name="one_label_per_participant_lesion"),
            models.CheckConstraint(
                condition=(
                    models.Q(anatomical_site="hand_digit") & ~models.Q(digit="") & ~models.Q(phalanx="")
                )
                | (~models.Q(anatomical_site="hand_digit") & models.Q(digit="", phalanx="")),
                name="digit_and_phalanx_only_for_fingers",
            ),
            # The thumb has two phalanges.
            models.CheckConstraint(
                condition=~models.Q(digit="thumb", phalanx="middle"), name="thumb_has_no_middle_phalanx"
            ),
            models.CheckConstraint(
                condition=~models.Q(anatomical_site="other") | ~models.Q(site_detail=""),
                name="other_site_is_described",
            ),
            models.CheckConstraint(
                condition=models.Q(resolved_on__isnull=True)
                | models.Q(resolved_on__gte=models.F("first_seen_on")),
                name="resolved_after_first_seen",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label}: {self.location}"

    def get_absolute_url(self) -> str:
        return reverse("lesions:lesion-list", args=[self.participant_id])

    @property
    def location(self) -> str:
        parts = [self.get_laterality_display()]
        if self.anatomical_site == AnatomicalSite.HAND_DIGIT:
            parts += [self.get_digit_display().lower(), self.get_phalanx_display().lower()]
        else:
            parts.append(self.get_anatomical_site_display().lower())
        if self.site_detail:
            parts.append(f"({self.site_detail})")
        return " ".join(parts)
