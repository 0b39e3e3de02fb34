"""Screening log and the eligibility checklist (protocol criteria in trial.protocol)."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from trial.audit import audited
from trial.models import Site, SiteVisibility, site_visibility
from trial.partial_dates import PartialDateField
from trial.protocol import PROTOCOL, Diagnosis, age_in_years


class SiteSequence(models.Model):
    """Per-site counters for screening numbers and study ids: numbers are never reused, because
    the counter only goes up (taken with SELECT ... FOR UPDATE in the service)."""

    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=30)
    last_value = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="one_sequence_per_site_name")]

    def __str__(self) -> str:
        return f"{self.site.code}:{self.name}={self.last_value}"


class ScreeningOutcome(models.TextChoices):
    IN_SCREENING = "in_screening", _("In screening")
    SCREEN_FAILURE = "screen_failure", _("Screen failure")
    ELIGIBLE = "eligible", _("Eligible, not yet enrolled")
    DECLINED = "declined", _("Eligible, declined or not enrolled")
    ENROLLED = "enrolled", _("Enrolled")


class Sex(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")


class ScreeningQuerySet(models.QuerySet):
    def visible_to(self, user) -> ScreeningQuerySet:
        visibility = site_visibility(user)
        if visibility is SiteVisibility.NONE:
            return self.none()
        if visibility is SiteVisibility.ALL_SITES:
            return self
        return self.filter(site__memberships__user=user)

    def for_log(self) -> ScreeningQuerySet:
        return self.select_related("site", "eligibility", "participant")


@audited
class Screening(models.Model):
    """One person screened at a site. Identifying fields are shown only to roles with
    `participants.view_identifying_data`; everyone else sees the screening number."""

    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="screenings", verbose_name=_("site")
    )
    screening_number = models.CharField(_("screening number"), max_length=20, unique=True, editable=False)
    # Identifying data: the minimum the site needs to find the patient's notes.
    first_name = models.CharField(_("first name"), max_length=100)
    last_name = models.CharField(_("last name"), max_length=100)
    date_of_birth = models.DateField(_("date of birth"))
    sex = models.CharField(_("sex at birth"), max_length=10, choices=Sex.choices)
    medical_record_number = models.CharField(
        _("hospital record number"), max_length=40, blank=True, help_text=_("Optional; kept at the site.")
    )
    screening_date = models.DateField(_("screening date"))
    outcome = models.CharField(
        _("outcome"), max_length=20, choices=ScreeningOutcome.choices, default=ScreeningOutcome.IN_SCREENING
    )
    outcome_note = models.CharField(
        _("outcome note"),
        max_length=300,
        blank=True,
        help_text=_("Why the person declined or was not enrolled."),
    )
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    objects = ScreeningQuerySet.as_manager()

    # Fields that roles without identifying-data permission never see.
    IDENTIFYING_FIELDS = ("first_name", "last_name", "date_of_birth", "medical_record_number")
    IDENTIFYING_PERMISSION = "participants.view_identifying_data"

    class Meta:
        ordering = ["-screening_date", "-id"]
        verbose_name = _("screening")
        verbose_name_plural = _("screening log")
        permissions = [
            ("view_identifying_data", _("Can see names, dates of birth and contact details")),
            ("confirm_eligibility", _("Can confirm eligibility as investigator")),
            ("enroll_participant", _("Can enrol a participant")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(screening_date__gt=models.F("date_of_birth")),
                name="screening_after_birth",
            )
        ]
        indexes = [
            models.Index(fields=["site", "outcome"]),
            # The signature queue's eligibility checklists, oldest first.
            models.Index(fields=["screening_date", "id"], name="screening_date_id"),
        ]

    def __str__(self) -> str:
        return self.screening_number

    def get_absolute_url(self) -> str:
        return reverse("participants:screening-detail", args=[self.pk])

    @property
    def age_at_screening(self) -> int:
        return age_in_years(self.date_of_birth, self.screening_date)


class CalcinosisModality(models.TextChoices):
    XRAY = "xray", _("X-ray")
    ULTRASOUND = "ultrasound", _("Ultrasound")


class PregnancyTestType(models.TextChoices):
    URINE_HCG = "urine_hcg", _("Urine hCG")
    SERUM_HCG = "serum_hcg", _("Serum hCG")


class PregnancyTestResult(models.TextChoices):
    NEGATIVE = "negative", _("Negative")
    POSITIVE = "positive", _("Positive")


class NonChildbearingReason(models.TextChoices):
    MALE = "male", _("Male")
    POST_MENOPAUSAL = "post_menopausal", _("Post-menopausal (12 months without menses)")
    SURGICALLY_STERILE = (
        "surgically_sterile",
        _("Surgically sterile (hysterectomy, bilateral oophorectomy or salpingectomy)"),
    )
    OTHER = "other", _("Other (describe)")


class EligibilityAssessmentQuerySet(models.QuerySet):
    def visible_to(self, user) -> EligibilityAssessmentQuerySet:
        # The checklist has no site of its own: it is visible where its screening is.
        return self.filter(screening__in=Screening.objects.visible_to(user))


class EligibilityStatus(models.TextChoices):
    INCOMPLETE = "incomplete", _("Incomplete")
    ELIGIBLE = "eligible", _("Eligible")
    NOT_ELIGIBLE = "not_eligible", _("Not eligible")


@audited
class EligibilityAssessment(models.Model):
    """The eligibility checklist (CRF). Each criterion's answers with their evidence; the result is
    computed from trial.protocol.PROTOCOL by `refresh_result()` and stored for the log and the
    database's enrolment guard."""

    screening = models.OneToOneField(
        Screening, on_delete=models.PROTECT, related_name="eligibility", verbose_name=_("screening")
    )
    protocol_version = models.CharField(_("protocol version"), max_length=20, default=PROTOCOL.version)
    # IN1
    diagnosis = models.CharField(
        _("diagnosis"),
        max_length=10,
        blank=True,
        choices=[
            (Diagnosis.SYSTEMIC_SCLEROSIS.value, _("Systemic sclerosis (SSc)")),
            (Diagnosis.MIXED_CONNECTIVE_TISSUE_DISEASE.value, _("Mixed connective tissue disease (MCTD)")),
            (Diagnosis.INFLAMMATORY_MYOPATHY.value, _("Inflammatory myopathy (e.g. dermatomyositis)")),
            (Diagnosis.OTHER.value, _("Other")),
        ],
    )
    diagnosis_date = PartialDateField(
        _("date of diagnosis"), blank=True, help_text=_("YYYY, YYYY-MM or YYYY-MM-DD, as precise as known.")
    )
    # IN3
    capable_of_consent = models.BooleanField(_("competent to give informed consent"), null=True, blank=True)
    # IN4
    calcinosis_evidence = models.BooleanField(_("radiographic evidence of calcinosis"), null=True, blank=True)
    calcinosis_modality = models.CharField(
        _("imaging modality"), max_length=12, blank=True, choices=CalcinosisModality.choices
    )
    calcinosis_evidence_date = models.DateField(_("imaging date"), null=True, blank=True)
    # IN5
    needs_symptomatic_relief = models.BooleanField(_("needs symptomatic relief"), null=True, blank=True)
    # EX1
    childbearing_potential = models.BooleanField(_("woman of child-bearing potential"), null=True, blank=True)
    pregnancy_test_type = models.CharField(
        _("pregnancy test"), max_length=12, blank=True, choices=PregnancyTestType.choices
    )
    pregnancy_test_date = models.DateField(_("pregnancy test date"), null=True, blank=True)
    pregnancy_test_result = models.CharField(
        _("pregnancy test result"), max_length=10, blank=True, choices=PregnancyTestResult.choices
    )
    non_childbearing_reason = models.CharField(
        _("reason not of child-bearing potential"),
        max_length=20,
        blank=True,
        choices=NonChildbearingReason.choices,
    )
    non_childbearing_detail = models.CharField(_("other reason (describe)"), max_length=200, blank=True)
    # Computed by refresh_result(); never typed.
    status = models.CharField(
        _("eligibility"),
        max_length=15,
        choices=EligibilityStatus.choices,
        default=EligibilityStatus.INCOMPLETE,
    )
    failing_criteria = ArrayField(
        models.CharField(max_length=10), default=list, blank=True, verbose_name=_("failing criteria")
    )
    # Investigator confirmation (cleared by any later change of the answers).
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("confirmed by"),
    )
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    ANSWER_FIELDS = (
        "diagnosis",
        "diagnosis_date",
        "capable_of_consent",
        "calcinosis_evidence",
        "calcinosis_modality",
        "calcinosis_evidence_date",
        "needs_symptomatic_relief",
        "childbearing_potential",
        "pregnancy_test_type",
        "pregnancy_test_date",
        "pregnancy_test_result",
        "non_childbearing_reason",
        "non_childbearing_detail",
    )

    objects = EligibilityAssessmentQuerySet.as_manager()

    class Meta:
        verbose_name = _("eligibility checklist")
        verbose_name_plural = _("eligibility checklists")
        constraints = [
            # Only an eligible checklist can be confirmed, and a confirmation names who and when.
            models.CheckConstraint(
                condition=models.Q(confirmed_at__isnull=True, confirmed_by__isnull=True)
                | models.Q(confirmed_at__isnull=False, confirmed_by__isnull=False, status="eligible"),
                name="confirmation_only_when_eligible",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.screening.screening_number} eligibility"

    def get_absolute_url(self) -> str:
        return self.screening.get_absolute_url()

    # The protocol's criteria read these two from the screening record.
    @property
    def date_of_birth(self) -> dt.date | None:
        return self.screening.date_of_birth

    @property
    def screening_date(self) -> dt.date | None:
        return self.screening.screening_date

    def assess(self):
        return PROTOCOL.assess(self)

    def refresh_result(self) -> None:
        result = self.assess()
        self.status = result.status
        self.failing_criteria = [r.code for r in result.failing]
        self.protocol_version = PROTOCOL.version

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None
