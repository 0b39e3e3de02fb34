"""Versioned consent documents, consent records and withdrawals of consent."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models.screening import Screening
from trial.audit import audited


class ConsentDocumentQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.all() if getattr(user, "is_authenticated", False) and user.is_active else self.none()

    def effective_on(self, day: dt.date) -> ConsentDocumentQuerySet:
        return self.filter(effective_from__lte=day).filter(
            models.Q(effective_until__isnull=True) | models.Q(effective_until__gte=day)
        )

    def current(self, *, language: str, on: dt.date) -> ConsentDocument | None:
        """The version in force for a language on a day: the latest that has become effective."""
        return self.effective_on(on).filter(language=language).order_by("-effective_from", "-id").first()


def consent_document_path(instance: ConsentDocument, filename: str) -> str:
    return f"consent-documents/v{instance.version}-{instance.language}.pdf"


@audited
class ConsentDocument(models.Model):
    """An approved version of the consent form. When a new version becomes effective, everyone
    who signed an older version of the same language is due to re-consent."""

    # The version becomes part of the stored file name: letters, digits, dots, dashes, underscores.
    version = models.CharField(
        _("version"),
        max_length=20,
        validators=[
            RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", _("Use letters, digits, '.', '-' or '_' (e.g. 2.1).")),
        ],
    )
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, default="en")
    title = models.CharField(_("title"), max_length=200)
    approved_on = models.DateField(_("ethics approval date"))
    effective_from = models.DateField(_("effective from"))
    effective_until = models.DateField(_("effective until"), null=True, blank=True)
    document = models.FileField(_("document (PDF)"), upload_to=consent_document_path)
    sha256 = models.CharField(_("SHA-256 of the PDF"), max_length=64, editable=False)

    objects = ConsentDocumentQuerySet.as_manager()

    class Meta:
        ordering = ["language", "-effective_from"]
        verbose_name = _("consent document")
        verbose_name_plural = _("consent documents")
        permissions = [("manage_consent_documents", _("Can add and retire consent document versions"))]
        constraints = [
            models.UniqueConstraint(fields=["version", "language"], name="one_document_per_version_language"),
            models.CheckConstraint(
                condition=models.Q(effective_until__isnull=True)
                | models.Q(effective_until__gte=models.F("effective_from")),
                name="consent_document_period_ordered",
            ),
            models.CheckConstraint(
                condition=models.Q(effective_from__gte=models.F("approved_on")),
                name="consent_document_effective_after_approval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} v{self.version} ({self.language})"

    def get_absolute_url(self) -> str:
        return reverse("participants:consent-document-list")


class ConsentRecordQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(screening__in=Screening.objects.visible_to(user))


@audited
class ConsentRecord(models.Model):
    """A person's signed consent to one version of the consent document."""

    screening = models.ForeignKey(
        Screening, on_delete=models.PROTECT, related_name="consents", verbose_name=_("screening")
    )
    document = models.ForeignKey(
        ConsentDocument, on_delete=models.PROTECT, related_name="records", verbose_name=_("consent version")
    )
    consented_at = models.DateTimeField(_("date and time of consent"))
    participant_signature = models.CharField(
        _("participant's full name as signature"), max_length=200, help_text=_("Typed by the participant.")
    )
    attestation = models.BooleanField(
        _("participant confirms they read the form, had their questions answered and agree to take part"),
        default=False,
    )
    signature_captured_at = models.DateTimeField(_("signature captured at"), auto_now_add=True)
    obtained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("consent obtained by"),
    )
    representative_name = models.CharField(_("legally authorised representative"), max_length=200, blank=True)
    representative_relationship = models.CharField(
        _("representative's relationship"), max_length=100, blank=True
    )
    witness_name = models.CharField(_("witness"), max_length=200, blank=True)
    copy_given = models.BooleanField(_("copy of the signed form given to the participant"), default=False)

    objects = ConsentRecordQuerySet.as_manager()

    # Names typed as signatures identify the person; the audit history hides them from monitors.
    IDENTIFYING_FIELDS = ("participant_signature", "representative_name", "witness_name")
    IDENTIFYING_PERMISSION = "participants.view_identifying_data"

    class Meta:
        ordering = ["-consented_at"]
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        constraints = [
            models.CheckConstraint(condition=models.Q(attestation=True), name="consent_attested"),
            models.CheckConstraint(condition=~models.Q(participant_signature=""), name="consent_signed"),
            models.CheckConstraint(
                condition=models.Q(representative_name="") | ~models.Q(representative_relationship=""),
                name="representative_has_relationship",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.screening} consent v{self.document.version}"

    def get_absolute_url(self) -> str:
        return self.screening.get_absolute_url()


class WithdrawalScope(models.TextChoices):
    TREATMENT_ONLY = "treatment", _("Stops study treatment; follow-up visits and questionnaires continue")
    NO_CONTACT = "no_contact", _("No further contact or procedures; data collected so far is kept")
    FULL = "full", _("Full withdrawal: no further contact, procedures or data collection")


class ConsentWithdrawalQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(screening__in=Screening.objects.visible_to(user))


@audited
class ConsentWithdrawal(models.Model):
    """Consent withdrawn, fully or partly. No further contact for NO_CONTACT and FULL."""

    screening = models.ForeignKey(
        Screening, on_delete=models.PROTECT, related_name="withdrawals", verbose_name=_("screening")
    )
    withdrawn_on = models.DateField(_("date withdrawn"))
    scope = models.CharField(_("what is withdrawn"), max_length=12, choices=WithdrawalScope.choices)
    reason = models.CharField(_("reason (if given)"), max_length=500, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("recorded by")
    )
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    objects = ConsentWithdrawalQuerySet.as_manager()

    STOPS_CONTACT = (WithdrawalScope.NO_CONTACT, WithdrawalScope.FULL)

    class Meta:
        ordering = ["-withdrawn_on", "-id"]
        verbose_name = _("consent withdrawal")
        verbose_name_plural = _("consent withdrawals")

    def __str__(self) -> str:
        return f"{self.screening} withdrawal ({self.get_scope_display()})"

    def get_absolute_url(self) -> str:
        return self.screening.get_absolute_url()
