"""Electronic signatures (21 CFR 11.50, 11.70, 11.200) of a visit, of a person's eligibility and of
a participant's end of study, and the append-only log of refused signing attempts."""

from __future__ import annotations

import pgtrigger
from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Screening, Visit
from trial.audit import audited
from trial.models import Site


class SignatureKind(models.TextChoices):
    """What is signed. Each kind points at its subject through its own foreign key: a visit; the
    screening whose eligibility checklist is signed (eligibility is confirmed before enrolment, so
    before any participant exists); the participant whose end of study is signed."""

    VISIT = "visit", _("Visit")
    ELIGIBILITY = "eligibility", _("Eligibility")
    END_OF_STUDY = "end_of_study", _("End of study")


# kind -> the foreign key that names its subject; the others stay empty (database check).
SUBJECT_FIELDS = {
    SignatureKind.VISIT: "visit",
    SignatureKind.ELIGIBILITY: "screening",
    SignatureKind.END_OF_STUDY: "participant",
}


def exactly_one_subject() -> models.Q:
    """A row of each kind sets its subject's foreign key and leaves the others empty."""
    condition = models.Q()
    for kind, field in SUBJECT_FIELDS.items():
        empty = {f"{other}__isnull": True for other in SUBJECT_FIELDS.values() if other != field}
        condition |= models.Q(kind=kind, **{f"{field}__isnull": False}, **empty)
    return condition


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
        sites = Site.objects.visible_to(user)
        return self.filter(
            models.Q(visit__participant__site__in=sites)
            | models.Q(screening__site__in=sites)
            | models.Q(participant__site__in=sites)
        )

    def valid(self) -> SignatureQuerySet:
        return self.filter(status=SignatureStatus.VALID)

    def for_subject(self, subject: models.Model) -> SignatureQuerySet:
        """The signatures of one subject (a visit, a screening's eligibility, a participant's end
        of study)."""
        kind = SUBJECT_KINDS[type(subject)]
        return self.filter(kind=kind, **{SUBJECT_FIELDS[kind]: subject})


# 21 CFR 11.70: a subject foreign key is never re-pointed, a refused attempt never rewritten.
_PERMANENT_SUBJECT = pgtrigger.ReadOnly(
    name="subject_is_permanent", fields=["kind", *SUBJECT_FIELDS.values()]
)


class SignedSubject(models.Model):
    """What is (or was being) signed: `kind` says which of the three foreign keys is set; the
    concrete models' check constraint (`exactly_one_subject`) makes exactly that one set."""

    kind = models.CharField(
        _("what is signed"), max_length=12, choices=SignatureKind.choices, default=SignatureKind.VISIT
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("visit")
    )
    screening = models.ForeignKey(
        Screening,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("screening (eligibility)"),
    )
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("participant (end of study)"),
    )

    class Meta:
        abstract = True

    @property
    def subject(self) -> models.Model:
        return getattr(self, SUBJECT_FIELDS[self.kind])


# checked_at is bookkeeping of the verification, not a change of the signature.
@audited(exclude=("checked_at",))
@pgtrigger.register(_PERMANENT_SUBJECT)
class Signature(SignedSubject):
    """One signature of one subject's records: a visit, a screening's eligibility checklist or a
    participant's end of study (`kind` says which foreign key is set; a database check makes
    exactly that one set). Bound to the records by `content_hash`: SHA-256 of the canonical JSON
    of their values (`trial.signatures.subjects`), kept with the JSON itself (`content`) so a
    reviewer can see exactly what was signed. A signature is never deleted or re-pointed; when the
    records change it is marked void (an audited update)."""

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
    checked_at = models.DateTimeField(
        _("last found to verify (database clock)"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Edits before this time are known not to change the signed content."),
    )

    objects = SignatureQuerySet.as_manager()

    class Meta:
        ordering = ["-signed_at", "-pk"]
        verbose_name = _("electronic signature")
        verbose_name_plural = _("electronic signatures")
        permissions = [("sign_visit", _("Can sign visits, eligibility and ends of study electronically"))]
        constraints = [
            models.CheckConstraint(condition=exactly_one_subject(), name="signature_has_one_subject"),
            # One standing signature per subject: signing again needs the earlier one void first.
            *[
                models.UniqueConstraint(
                    fields=[field],
                    condition=models.Q(status="valid", kind=kind),
                    name=f"one_valid_signature_per_{field}",
                )
                for kind, field in SUBJECT_FIELDS.items()
            ],
            models.CheckConstraint(
                condition=models.Q(status="valid", voided_at__isnull=True)
                | models.Q(status="void", voided_at__isnull=False),
                name="void_signature_has_time",
            ),
            models.CheckConstraint(condition=~models.Q(printed_name=""), name="signature_has_printed_name"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_label}: {self.printed_name}, {self.get_meaning_display()}"

    def get_absolute_url(self) -> str:
        return sign_url(self.subject)

    @property
    def subject_label(self) -> str:
        return f"{self.get_kind_display()} {self.subject}"


def sign_url(subject: models.Model) -> str:
    """The review-and-sign page of a subject."""
    kind = SUBJECT_KINDS[type(subject)]
    return reverse(f"signatures:{kind.replace('_', '-')}-sign", args=[subject.pk])


SUBJECT_KINDS: dict[type[models.Model], str] = {
    Visit: SignatureKind.VISIT,
    Screening: SignatureKind.ELIGIBILITY,
    Participant: SignatureKind.END_OF_STUDY,
}


@audited(history_page=False)
@pgtrigger.register(
    # Append-only: the log of refused attempts is evidence (21 CFR 11.300(d)); the database
    # refuses every UPDATE and DELETE, and @audited's guard refuses the pgtrigger bypass.
    pgtrigger.Protect(name="refused_attempts_are_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
)
class SigningFailure(SignedSubject):
    """A refused signing attempt (wrong password or code) and what was being signed: logged,
    counted toward the lockout (settings.SIGNATURE_FAILURE_LIMIT), never changed or deleted."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    reason = models.CharField(_("reason"), max_length=40)
    at = models.DateTimeField(_("at"), auto_now_add=True)
    remote_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    # The runtime database role may only read and insert here (trial/database_roles.py).
    APPEND_ONLY = True

    class Meta:
        ordering = ["-at"]
        verbose_name = _("refused signing attempt")
        verbose_name_plural = _("refused signing attempts")
        indexes = [models.Index(fields=["user", "at"])]
        constraints = [
            models.CheckConstraint(condition=exactly_one_subject(), name="refused_attempt_has_one_subject")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.reason} at {self.at:%Y-%m-%d %H:%M}"
