"""Enrolled participants: study id, contact details for questionnaires, end of study."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pgtrigger
from django.conf import settings
from django.db import models
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models.consent import ConsentDocument, ConsentRecord, ConsentWithdrawal
from participants.models.screening import Screening
from trial.audit import audited
from trial.models import Site, SiteVisibility, site_visibility, validate_time_zone
from trial.protocol import PROTOCOL

# The database refuses an enrolment that the service would refuse: no code path can enrol a
# person whose eligibility is not confirmed or who has no consent standing (ICH E6(R3) 2.8).
ENROLMENT_GUARD_SQL = """
IF NOT EXISTS (
    SELECT 1 FROM participants_eligibilityassessment e
    WHERE e.screening_id = NEW.screening_id AND e.status = 'eligible' AND e.confirmed_at IS NOT NULL
) THEN
    RAISE EXCEPTION 'enrolment refused: eligibility of screening % is not confirmed', NEW.screening_id
        USING ERRCODE = 'check_violation';
END IF;
IF NOT EXISTS (
    SELECT 1 FROM participants_consentrecord c
    WHERE c.screening_id = NEW.screening_id
      AND NOT EXISTS (
          SELECT 1 FROM participants_consentwithdrawal w
          WHERE w.screening_id = NEW.screening_id AND w.recorded_at >= c.signature_captured_at
      )
) THEN
    RAISE EXCEPTION 'enrolment refused: screening % has no consent in force', NEW.screening_id
        USING ERRCODE = 'check_violation';
END IF;
RETURN NEW;
"""


class ParticipantStatus(models.TextChoices):
    ON_STUDY = "on_study", _("On study")
    COMPLETED = "completed", _("Completed")
    WITHDRAWN = "withdrawn", _("Withdrawn early")


class EndReason(models.TextChoices):
    COMPLETED = "completed", _("Completed the protocol")
    WITHDREW_CONSENT = "withdrew_consent", _("Withdrew consent")
    ADVERSE_EVENT = "adverse_event", _("Adverse event")
    INVESTIGATOR_DECISION = "investigator", _("Investigator decision")
    PREGNANCY = "pregnancy", _("Pregnancy")
    LOST_TO_FOLLOW_UP = "lost", _("Lost to follow-up")
    DEATH = "death", _("Death")
    OTHER = "other", _("Other")


class ParticipantQuerySet(models.QuerySet):
    def visible_to(self, user) -> ParticipantQuerySet:
        visibility = site_visibility(user)
        if visibility is SiteVisibility.NONE:
            return self.none()
        if visibility is SiteVisibility.ALL_SITES:
            return self
        return self.of_site_member(user.pk)

    def of_site_member(self, user_id: int) -> ParticipantQuerySet:
        """Participants of the sites the user is a member of: what `visible_to` shows a user who
        may see only their own sites."""
        return self.filter(site__memberships__user_id=user_id)

    def contactable(self) -> ParticipantQuerySet:
        """Participants the study may still contact (e-mails, reminders): on study and no
        withdrawal that stops contact. Every scheduled contact must go through this."""
        stopped = ConsentWithdrawal.objects.filter(
            screening_id=OuterRef("screening_id"), scope__in=ConsentWithdrawal.STOPS_CONTACT
        )
        return self.filter(status=ParticipantStatus.ON_STUDY).exclude(models.Exists(stopped))

    def with_consent_version(self) -> ParticipantQuerySet:
        latest = ConsentRecord.objects.filter(screening_id=OuterRef("screening_id")).order_by(
            "-consented_at", "-id"
        )
        return self.annotate(
            consent_document_id=Subquery(latest.values("document_id")[:1]),
            consent_version=Subquery(latest.values("document__version")[:1]),
        )

    def needing_reconsent(self, *, on: dt.date) -> ParticipantQuerySet:
        """On-study participants whose latest consent is not the version now in force for their
        language (flagged on the coordinator's list until they re-consent)."""
        current_by_language = {}
        for doc in ConsentDocument.objects.effective_on(on).order_by("language", "-effective_from", "-id"):
            current_by_language.setdefault(doc.language, doc.pk)
        qs = self.filter(status=ParticipantStatus.ON_STUDY).with_consent_version()
        condition = models.Q()
        for language, doc_id in current_by_language.items():
            condition |= models.Q(preferred_language=language) & ~models.Q(consent_document_id=doc_id)
        return qs.filter(condition) if current_by_language else qs.none()


@audited
@pgtrigger.register(
    pgtrigger.Trigger(
        name="enrolment_guard", when=pgtrigger.Before, operation=pgtrigger.Insert, func=ENROLMENT_GUARD_SQL
    ),
    # An enrolment stays with the person it was checked for.
    pgtrigger.ReadOnly(name="screening_is_permanent", fields=["screening"]),
)
class Participant(models.Model):
    screening = models.OneToOneField(
        Screening, on_delete=models.PROTECT, related_name="participant", verbose_name=_("screening")
    )
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="participants", verbose_name=_("site")
    )
    study_id = models.CharField(_("study id"), max_length=20, unique=True, editable=False)
    enrolled_on = models.DateField(_("enrolment date"))
    enrolled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("enrolled by")
    )
    protocol_version = models.CharField(_("protocol version"), max_length=20, default=PROTOCOL.version)
    # Contact for questionnaire e-mails (identifying: shown only with view_identifying_data).
    email = models.EmailField(_("e-mail for questionnaires"), blank=True)
    preferred_language = models.CharField(
        _("preferred language"), max_length=10, choices=settings.LANGUAGES, default="en"
    )
    time_zone = models.CharField(
        _("participant's time zone"), max_length=64, default="UTC", validators=[validate_time_zone]
    )
    status = models.CharField(
        _("status"), max_length=12, choices=ParticipantStatus.choices, default=ParticipantStatus.ON_STUDY
    )
    ended_on = models.DateField(_("end of study date"), null=True, blank=True)
    end_reason = models.CharField(
        _("end of study reason"), max_length=20, choices=EndReason.choices, blank=True
    )
    end_reason_detail = models.CharField(_("end of study details"), max_length=500, blank=True)

    objects = ParticipantQuerySet.as_manager()

    IDENTIFYING_FIELDS = ("email",)
    IDENTIFYING_PERMISSION = "participants.view_identifying_data"

    class Meta:
        ordering = ["study_id"]
        verbose_name = _("participant")
        verbose_name_plural = _("participants")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status="on_study", ended_on__isnull=True, end_reason="")
                | (
                    ~models.Q(status="on_study") & models.Q(ended_on__isnull=False) & ~models.Q(end_reason="")
                ),
                name="end_of_study_complete",
            ),
        ]
        indexes = [
            # Work lists count and read a site's on-study participants (the today list).
            models.Index(fields=["site", "status"], name="participant_site_status"),
            # The signature queue's ends of study, in the order it lists them.
            models.Index(
                fields=["ended_on", "study_id"],
                condition=~models.Q(status="on_study"),
                name="participant_ended",
            ),
        ]

    def __str__(self) -> str:
        return self.study_id

    def get_absolute_url(self) -> str:
        return reverse("participants:participant-detail", args=[self.pk])

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)
