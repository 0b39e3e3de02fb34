"""Electronic signatures of visits (21 CFR 11.50, 11.70, 11.200) and failed signing attempts."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Visit
from trial.audit import audited


class SignatureMeaning(models.TextChoices):
    """What the signer means by signing (11.50(a)(3)), printed with the signature."""

    REVIEWED_APPROVED = "reviewed_approved", _("Reviewed and approved")
    REVIEWED = "reviewed", _("Reviewed")
    AUTHOR = "author", _("Author: I entered or verified these data")


class SignatureStatus(models.TextChoices):
    VALID = "valid", _("Valid")
    VOID = "void", _("Void: the signed records changed after signing")


class SignatureQuerySet(models.QuerySet):
    def visible_to(self, user) -> SignatureQuerySet:
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))

    def valid(self) -> SignatureQuerySet:
        return self.filter(status=SignatureStatus.VALID)


@audited
class Signature(models.Model):
    """One signature of one visit's records. Bound to their content by `content_hash`: SHA-256
    of the canonical JSON of the signed records' values (`trial.reports.content`), kept with the
    JSON itself (`content`) so a reviewer can see exactly what was signed. A signature is never
    deleted or re-pointed; when the records change it is marked void (an audited update)."""

    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="signatures", verbose_name=_("visit")
    )
    signer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("signed by")
    )
    printed_name = models.CharField(_("printed name"), max_length=200)
    signer_email = models.EmailField(_("signer's e-mail (user id)"))
    meaning = models.CharField(_("meaning"), max_length=20, choices=SignatureMeaning.choices)
    signed_at = models.DateTimeField(_("signed at (UTC)"))
    content_hash = models.CharField(_("content hash (SHA-256)"), max_length=64)
    content = models.JSONField(_("signed content"))
    second_factor_checked = models.BooleanField(_("second factor checked again"), default=False)
    status = models.CharField(
        _("status"), max_length=5, choices=SignatureStatus.choices, default=SignatureStatus.VALID
    )
    voided_at = models.DateTimeField(_("voided at"), null=True, blank=True)
    void_reason = models.CharField(_("why void"), max_length=300, blank=True)

    objects = SignatureQuerySet.as_manager()

    class Meta:
        ordering = ["visit", "-signed_at"]
        verbose_name = _("electronic signature")
        verbose_name_plural = _("electronic signatures")
        permissions = [("sign_visit", _("Can sign visits electronically"))]
        constraints = [
            # One standing signature per visit: signing again needs the earlier one void first.
            models.UniqueConstraint(
                fields=["visit"], condition=models.Q(status="valid"), name="one_valid_signature_per_visit"
            ),
            models.CheckConstraint(
                condition=models.Q(status="valid", voided_at__isnull=True)
                | models.Q(status="void", voided_at__isnull=False),
                name="void_signature_has_time",
            ),
            models.CheckConstraint(condition=~models.Q(printed_name=""), name="signature_has_printed_name"),
        ]

    def __str__(self) -> str:
        return f"{self.visit}: {self.printed_name}, {self.get_meaning_display()}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("signatures:visit-sign", args=[self.visit_id])


class SigningFailure(models.Model):
    """A refused signing attempt (wrong password or code): logged, and counted toward the lockout
    (`trial.signatures.services.SIGNING_FAILURE_LIMIT`)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    visit = models.ForeignKey(Visit, on_delete=models.PROTECT, related_name="+", verbose_name=_("visit"))
    reason = models.CharField(_("reason"), max_length=40)
    at = models.DateTimeField(_("at"), auto_now_add=True)
    remote_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = _("refused signing attempt")
        verbose_name_plural = _("refused signing attempts")
        indexes = [models.Index(fields=["user", "at"])]

    def __str__(self) -> str:
        return f"{self.user} {self.reason} at {self.at:%Y-%m-%d %H:%M}"
