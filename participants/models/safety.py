"""Safety: pregnancy tests before injections, adverse events, AE review per visit, deviations."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models.participant import Participant
from participants.models.screening import PregnancyTestResult, PregnancyTestType
from participants.models.visit import Visit
from trial.audit import audited
from trial.concurrency import row_version_field
from trial.models import Site
from trial.partial_dates import PartialDateField


class ParticipantScopedQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(participant__in=Participant.objects.visible_to(user))


@audited
class PregnancyTest(models.Model):
    """A pregnancy test of a woman of child-bearing potential during the study (before injections)."""

    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="pregnancy_tests", verbose_name=_("participant")
    )
    visit = models.ForeignKey(
        Visit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pregnancy_tests",
        verbose_name=_("visit"),
    )
    test_type = models.CharField(_("test"), max_length=12, choices=PregnancyTestType.choices)
    test_date = models.DateField(_("test date"))
    result = models.CharField(_("result"), max_length=10, choices=PregnancyTestResult.choices)
    row_version = row_version_field()

    objects = ParticipantScopedQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "-test_date"]
        verbose_name = _("pregnancy test")
        verbose_name_plural = _("pregnancy tests")

    def __str__(self) -> str:
        return f"{self.participant.study_id} {self.get_test_type_display()} {self.test_date}: {self.get_result_display()}"

    def get_absolute_url(self) -> str:
        return self.visit.get_absolute_url() if self.visit_id else self.participant.get_absolute_url()


class CtcaeVersion(models.TextChoices):
    V5 = "5.0", "CTCAE v5.0"
    V6 = "6.0", "CTCAE v6.0"


class SeriousnessCriterion(models.TextChoices):
    DEATH = "death", _("Results in death")
    LIFE_THREATENING = "life_threatening", _("Life-threatening")
    HOSPITALISATION = "hospitalisation", _("Requires or prolongs hospitalisation")
    DISABILITY = "disability", _("Persistent or significant disability")
    CONGENITAL_ANOMALY = "congenital_anomaly", _("Congenital anomaly or birth defect")
    IMPORTANT_MEDICAL_EVENT = "important_medical_event", _("Important medical event")


class Relatedness(models.TextChoices):
    NOT_RELATED = "not_related", _("Not related")
    UNLIKELY = "unlikely", _("Unlikely")
    POSSIBLE = "possible", _("Possible")
    PROBABLE = "probable", _("Probable")
    DEFINITE = "definite", _("Definite")


class AEOutcome(models.TextChoices):
    RECOVERED = "recovered", _("Recovered / resolved")
    RECOVERING = "recovering", _("Recovering / resolving")
    NOT_RECOVERED = "not_recovered", _("Not recovered / not resolved")
    SEQUELAE = "sequelae", _("Recovered with sequelae")
    FATAL = "fatal", _("Fatal")
    UNKNOWN = "unknown", _("Unknown")


class ActionTaken(models.TextChoices):
    NONE = "none", _("None")
    INJECTION_DELAYED = "delayed", _("Next injection delayed")
    LESION_NOT_INJECTED = "lesion_skipped", _("Lesion not injected again")
    TREATMENT_STOPPED = "stopped", _("Study treatment stopped")
    OTHER = "other", _("Other")


# Expected local events after intralesional STS (DOMAIN.md s.6), offered first in the term list.
EXPECTED_LOCAL_TERMS = (
    ("injection_site_pain", _("Injection site pain or burning")),
    ("injection_site_ulceration", _("Injection site ulceration")),
    ("injection_site_infection", _("Injection site infection")),
    ("injection_site_reaction", _("Injection site reaction (redness, swelling)")),
    ("difficult_needle_passage", _("Difficult needle passage through dense deposit")),
)


class AdverseEventQuerySet(ParticipantScopedQuerySet):
    def serious(self):
        return self.filter(serious=True)


@audited
class AdverseEvent(models.Model):
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="adverse_events", verbose_name=_("participant")
    )
    reported_at_visit = models.ForeignKey(
        Visit,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adverse_events",
        verbose_name=_("reported at visit"),
    )
    term_code = models.CharField(
        _("event"), max_length=40, choices=[*EXPECTED_LOCAL_TERMS, ("other", _("Other (describe)"))]
    )
    term_text = models.CharField(_("event term (if other)"), max_length=200, blank=True)
    ctcae_version = models.CharField(
        _("CTCAE version"), max_length=4, choices=CtcaeVersion.choices, default=CtcaeVersion.V5
    )
    grade = models.PositiveSmallIntegerField(
        _("CTCAE grade"), validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    serious = models.BooleanField(_("serious"), default=False)
    seriousness_criteria = ArrayField(
        models.CharField(max_length=30, choices=SeriousnessCriterion.choices),
        default=list,
        blank=True,
        verbose_name=_("seriousness criteria"),
    )
    related_to_sts = models.CharField(_("related to STS"), max_length=12, choices=Relatedness.choices)
    related_to_procedure = models.CharField(
        _("related to the injection procedure"), max_length=12, choices=Relatedness.choices
    )
    expected = models.BooleanField(_("expected"), default=False)
    onset_date = PartialDateField(_("onset date"))
    resolution_date = PartialDateField(_("resolution date"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=15, choices=AEOutcome.choices)
    action_taken = models.CharField(_("action taken"), max_length=15, choices=ActionTaken.choices)
    description = models.TextField(_("description"), blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("reported by")
    )
    reported_at = models.DateTimeField(_("reported at"), auto_now_add=True)
    investigators_notified_at = models.DateTimeField(_("investigators notified at"), null=True, blank=True)
    row_version = row_version_field()

    objects = AdverseEventQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "-reported_at"]
        verbose_name = _("adverse event")
        verbose_name_plural = _("adverse events")
        constraints = [
            models.CheckConstraint(condition=models.Q(grade__gte=1, grade__lte=5), name="ae_grade_1_5"),
            # Serious means at least one criterion; criteria mean serious.
            models.CheckConstraint(
                condition=models.Q(serious=True, seriousness_criteria__len__gt=0)
                | models.Q(serious=False, seriousness_criteria=[]),
                name="ae_serious_has_criteria",
            ),
            # Grade 5 is death: serious, fatal.
            models.CheckConstraint(
                condition=~models.Q(grade=5) | models.Q(serious=True, outcome="fatal"),
                name="ae_grade_5_is_fatal_and_serious",
            ),
            models.CheckConstraint(
                condition=~models.Q(term_code="other") | ~models.Q(term_text=""),
                name="ae_other_term_described",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant.study_id}: {self.term} (grade {self.grade})"

    def get_absolute_url(self) -> str:
        return reverse("participants:adverse-event-detail", args=[self.pk])

    @property
    def term(self) -> str:
        return self.term_text if self.term_code == "other" else str(self.get_term_code_display())


class AEReviewQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))


@audited
class AEReview(models.Model):
    """At each visit the coordinator asks about adverse events since the last visit."""

    visit = models.OneToOneField(
        Visit, on_delete=models.PROTECT, related_name="ae_review", verbose_name=_("visit")
    )
    new_events = models.BooleanField(_("any new adverse events since the last visit"))
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("reviewed by")
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), auto_now_add=True)
    row_version = row_version_field()

    objects = AEReviewQuerySet.as_manager()

    class Meta:
        verbose_name = _("adverse event review")
        verbose_name_plural = _("adverse event reviews")

    def __str__(self) -> str:
        return f"{self.visit} AE review"

    def get_absolute_url(self) -> str:
        return self.visit.get_absolute_url()


class DeviationCategory(models.TextChoices):
    ELIGIBILITY = "eligibility", _("Eligibility")
    CONSENT = "consent", _("Informed consent")
    VISIT_WINDOW = "visit_window", _("Visit out of window")
    DOSING = "dosing", _("Dosing or study treatment")
    PROCEDURE = "procedure", _("Study procedure not done or done wrongly")
    SAFETY_REPORTING = "safety_reporting", _("Safety reporting")
    OTHER = "other", _("Other")


class DeviationQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(site__in=Site.objects.visible_to(user))


@audited
class ProtocolDeviation(models.Model):
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="deviations", verbose_name=_("site")
    )
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="deviations",
        verbose_name=_("participant"),
    )
    occurred_on = models.DateField(_("date of the deviation"))
    category = models.CharField(_("category"), max_length=20, choices=DeviationCategory.choices)
    description = models.TextField(_("what happened"))
    corrective_action = models.TextField(_("corrective and preventive action"), blank=True)
    reported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("reported by")
    )
    reported_at = models.DateTimeField(_("reported at"), auto_now_add=True)
    row_version = row_version_field()

    objects = DeviationQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_on", "-id"]
        verbose_name = _("protocol deviation")
        verbose_name_plural = _("protocol deviations")

    def __str__(self) -> str:
        return f"{self.site.code} {self.occurred_on} {self.get_category_display()}"

    def get_absolute_url(self) -> str:
        return reverse("participants:deviation-list")
