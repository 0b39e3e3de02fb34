"""Questionnaire invitations (opaque links), responses, scores and reminders.

The token in a patient's link is random (256 bits) and stored only as its SHA-256; the URL holds
nothing else - no name, id or date. PostgreSQL is the source of truth for what must be e-mailed:
each reminder is a row with a unique key, claimed by the beat tick with SKIP LOCKED.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Visit
from trial.audit import audited


class InvitationStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SENT = "sent", _("Sent")
    OPENED = "opened", _("Opened")
    IN_PROGRESS = "in_progress", _("In progress")
    COMPLETED = "completed", _("Completed")
    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")


class ResponseSource(models.TextChoices):
    PATIENT = "patient", _("Patient, by e-mailed link")
    PAPER = "paper", _("Paper form entered by staff")


OPEN_STATUSES = (
    InvitationStatus.SCHEDULED,
    InvitationStatus.SENT,
    InvitationStatus.OPENED,
    InvitationStatus.IN_PROGRESS,
)


class InvitationQuerySet(models.QuerySet):
    def visible_to(self, user) -> InvitationQuerySet:
        return self.filter(participant__in=Participant.objects.visible_to(user))

    def answerable(self, *, now: dt.datetime | None = None) -> InvitationQuerySet:
        """Open for an answer now: not completed, revoked or past its window."""
        now = now or timezone.now()
        return self.filter(status__in=OPEN_STATUSES, opens_at__lte=now, valid_until__gte=now)

    def in_state(self, state: str, *, now: dt.datetime) -> InvitationQuerySet:
        """Invitations a person sees in `state` now (`Invitation.status_at`): an open one past its
        window is expired, not sent or in progress."""
        if state == InvitationStatus.EXPIRED:
            return self.filter(
                models.Q(status=InvitationStatus.EXPIRED)
                | models.Q(status__in=OPEN_STATUSES, valid_until__lt=now)
            )
        if state in OPEN_STATUSES:
            return self.filter(status=state, valid_until__gte=now)
        return self.filter(status=state)


@audited
class Invitation(models.Model):
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="invitations", verbose_name=_("participant")
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="invitations", verbose_name=_("visit")
    )
    instrument_code = models.CharField(_("questionnaire"), max_length=30)
    instrument_version = models.CharField(_("questionnaire version"), max_length=20)
    status = models.CharField(
        _("status"), max_length=12, choices=InvitationStatus.choices, default=InvitationStatus.SCHEDULED
    )
    opens_at = models.DateTimeField(_("opens at"))
    valid_until = models.DateTimeField(_("valid until"))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("e-mailed at"), null=True, blank=True)
    opened_at = models.DateTimeField(_("first opened at"), null=True, blank=True)
    started_at = models.DateTimeField(_("first answer at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_reason = models.CharField(_("why revoked"), max_length=300, blank=True)

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "visit__sequence", "instrument_code"]
        verbose_name = _("questionnaire invitation")
        verbose_name_plural = _("questionnaire invitations")
        constraints = [
            models.UniqueConstraint(
                fields=["visit", "instrument_code"], name="one_invitation_per_visit_instrument"
            ),
            models.CheckConstraint(
                condition=models.Q(valid_until__gt=models.F("opens_at")), name="invitation_window_ordered"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="completed") | models.Q(completed_at__isnull=False),
                name="completed_invitation_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="revoked") | models.Q(revoked_at__isnull=False),
                name="revoked_invitation_has_time",
            ),
        ]
        indexes = [models.Index(fields=["status", "valid_until"])]

    def __str__(self) -> str:
        return f"{self.participant.study_id} {self.visit.code} {self.instrument_code}"

    def get_absolute_url(self) -> str:
        return reverse("pro_measures:invitation-list", args=[self.participant_id])

    def status_at(self, now: dt.datetime) -> str:
        """The status a person sees: an open invitation past its window shows as expired."""
        if self.status in OPEN_STATUSES and now > self.valid_until:
            return InvitationStatus.EXPIRED
        return self.status

    @property
    def instrument(self):
        from pro_measures.instruments import instrument

        return instrument(self.instrument_code)


class InvitationLink(models.Model):
    """The link in one e-mail (invitation or reminder). Each e-mail has its own random token, so
    every link a patient received works until the questionnaire is done, revoked or closes. Only
    the token's SHA-256 is stored; the token exists only in the e-mail."""

    invitation = models.ForeignKey(Invitation, on_delete=models.CASCADE, related_name="links")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"link for {self.invitation_id}"


class ResponseQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(invitation__participant__in=Participant.objects.visible_to(user))


@audited
class Response(models.Model):
    """A questionnaire's answers, keyed by item link id; saved as the patient goes (resume)."""

    invitation = models.OneToOneField(
        Invitation, on_delete=models.PROTECT, related_name="response", verbose_name=_("invitation")
    )
    instrument_code = models.CharField(_("questionnaire"), max_length=30)
    instrument_version = models.CharField(_("questionnaire version"), max_length=20)
    answers = models.JSONField(_("answers"), default=dict, blank=True)
    source = models.CharField(
        _("source"), max_length=10, choices=ResponseSource.choices, default=ResponseSource.PATIENT
    )
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("entered by (paper)"),
    )
    updated_at = models.DateTimeField(_("last saved at"), auto_now=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)

    objects = ResponseQuerySet.as_manager()

    class Meta:
        verbose_name = _("questionnaire response")
        verbose_name_plural = _("questionnaire responses")
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(source="paper") | models.Q(entered_by__isnull=False),
                name="paper_response_names_who_entered_it",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.invitation} response"

    def get_absolute_url(self) -> str:
        return self.invitation.get_absolute_url()


class ScoreQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(response__invitation__participant__in=Participant.objects.visible_to(user))


@audited
class Score(models.Model):
    response = models.ForeignKey(
        Response, on_delete=models.PROTECT, related_name="scores", verbose_name=_("response")
    )
    name = models.CharField(_("score"), max_length=30)
    value = models.DecimalField(_("value"), max_digits=8, decimal_places=3, null=True, blank=True)
    instrument_code = models.CharField(_("questionnaire"), max_length=30)
    instrument_version = models.CharField(_("questionnaire version"), max_length=20)
    computed_at = models.DateTimeField(_("computed at"), auto_now_add=True)

    objects = ScoreQuerySet.as_manager()

    class Meta:
        ordering = ["response", "name"]
        verbose_name = _("questionnaire score")
        verbose_name_plural = _("questionnaire scores")
        constraints = [
            models.UniqueConstraint(fields=["response", "name"], name="one_score_per_response_name")
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"

    def get_absolute_url(self) -> str:
        return self.response.get_absolute_url()


class ReminderKind(models.TextChoices):
    INVITATION = "invitation", _("Invitation")
    REMINDER = "reminder", _("Reminder")
    LAST_CALL = "last_call", _("Last reminder before the window closes")
    VISIT_REMINDER = "visit_reminder", _("Visit reminder")
    COORDINATOR_DIGEST = "digest", _("Coordinator digest")


class ReminderState(models.TextChoices):
    PENDING = "pending", _("Pending")
    # Claimed and being handed to the mail server; `Reminder.message_id` is fixed from here on.
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")
    FAILED = "failed", _("Failed")


class Reminder(models.Model):
    """One e-mail that must go out at `due_at`, exactly once. `key` makes it unique: creating the
    same reminder twice is a no-op. pending -> sending -> sent (or cancelled / failed); see
    `pro_measures.reminders` for how a lost worker's 'sending' rows are resolved. Operational rows, not clinical data: their changes are in the
    row itself (state, sent_at, attempts), not in the audit trail."""

    key = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=20, choices=ReminderKind.choices)
    invitation = models.ForeignKey(
        Invitation, on_delete=models.CASCADE, null=True, blank=True, related_name="reminders"
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.CASCADE, null=True, blank=True, related_name="reminders"
    )
    site = models.ForeignKey("trial.Site", on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    sequence = models.PositiveSmallIntegerField(default=0)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=ReminderState.choices, default=ReminderState.PENDING)
    rules_fingerprint = models.CharField(max_length=16)
    sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.CharField(max_length=100, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)
    # Set once, when the row is first claimed for sending: a re-send after a lost worker carries
    # the same Message-ID, so a receiver that keeps one message per Message-ID shows it once.
    message_id = models.CharField(max_length=200, blank=True)
    sending_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at"]
        indexes = [
            # The beat tick's claim: pending rows due now, oldest first.
            models.Index(fields=["due_at"], name="reminder_pending_due", condition=models.Q(state="pending")),
            # Rows a lost worker left 'sending' (normally none).
            models.Index(fields=["due_at"], name="reminder_sending_due", condition=models.Q(state="sending")),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
