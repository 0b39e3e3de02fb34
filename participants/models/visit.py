"""Visits planned from the protocol schedule (trial.protocol): target date, window, state."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models.participant import Participant
from trial.audit import audited
from trial.protocol import FORM_LABELS, PROTOCOL, Form, VisitKind


class VisitStatus(models.TextChoices):
    PLANNED = "planned", _("Planned")
    COMPLETED = "completed", _("Completed")
    MISSED = "missed", _("Missed")


class VisitState(models.TextChoices):
    """What a person sees on a given day: the stored status plus the window arithmetic."""

    PLANNED = "planned", _("Planned")
    DUE = "due", _("Due (window open)")
    OVERDUE = "overdue", _("Overdue (window closed)")
    COMPLETED = "completed", _("Completed")
    MISSED = "missed", _("Missed")


class VisitQuerySet(models.QuerySet):
    def visible_to(self, user) -> VisitQuerySet:
        return self.filter(participant__in=Participant.objects.visible_to(user))

    def planned(self) -> VisitQuerySet:
        return self.filter(status=VisitStatus.PLANNED)

    def in_window_on(self, day: dt.date) -> VisitQuerySet:
        return self.planned().filter(window_opens__lte=day, window_closes__gte=day)

    def overdue_on(self, day: dt.date) -> VisitQuerySet:
        return self.planned().filter(window_closes__lt=day)

    def for_lists(self) -> VisitQuerySet:
        return self.select_related("participant", "participant__site")


@audited
class Visit(models.Model):
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="visits", verbose_name=_("participant")
    )
    code = models.CharField(
        _("visit"), max_length=12, help_text=_("Protocol visit code, e.g. W4; UNS-1 for unscheduled.")
    )
    definition_code = models.CharField(_("visit type"), max_length=12)
    name = models.CharField(_("visit name"), max_length=100)
    sequence = models.PositiveSmallIntegerField(_("order"))
    protocol_version = models.CharField(
        _("planned under protocol version"), max_length=20, default=PROTOCOL.version
    )
    target_date = models.DateField(_("target date"))
    window_opens = models.DateField(_("window opens"))
    window_closes = models.DateField(_("window closes"))
    status = models.CharField(
        _("status"), max_length=10, choices=VisitStatus.choices, default=VisitStatus.PLANNED
    )
    visit_date = models.DateField(_("visit date"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("completed by"),
    )
    missed_reason = models.CharField(_("why the visit was missed"), max_length=300, blank=True)
    unscheduled_reason = models.CharField(_("reason for the unscheduled visit"), max_length=300, blank=True)

    objects = VisitQuerySet.as_manager()

    class Meta:
        ordering = ["participant", "sequence"]
        verbose_name = _("visit")
        verbose_name_plural = _("visits")
        constraints = [
            models.UniqueConstraint(fields=["participant", "code"], name="one_visit_per_code"),
            models.CheckConstraint(
                condition=models.Q(window_opens__lte=models.F("target_date"))
                & models.Q(target_date__lte=models.F("window_closes")),
                name="target_inside_window",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="completed") | models.Q(visit_date__isnull=False),
                name="completed_visit_has_date",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="missed") | ~models.Q(missed_reason=""),
                name="missed_visit_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "window_closes"]),
            models.Index(fields=["status", "window_opens"]),
            # The today list's "due today" section: planned visits whose target date is today.
            models.Index(fields=["status", "target_date"], name="visit_status_target"),
            # The signature queue: completed visits oldest first, walked in this order to a page
            # (same-day visits are then sorted by study id and visit order); the included columns
            # let the walk and the queue's count read the index alone.
            models.Index(
                fields=["visit_date"],
                include=["participant", "sequence", "id"],
                condition=models.Q(status="completed"),
                name="visit_completed_date",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.participant.study_id} {self.code}"

    def get_absolute_url(self) -> str:
        return reverse("participants:visit-detail", args=[self.pk])

    @property
    def definition(self):
        return PROTOCOL.visit(self.definition_code)

    @property
    def is_unscheduled(self) -> bool:
        return self.definition.kind == VisitKind.UNSCHEDULED

    def state_on(self, day: dt.date) -> str:
        if self.status != VisitStatus.PLANNED:
            return self.status
        if day < self.window_opens:
            return VisitState.PLANNED
        if day <= self.window_closes:
            return VisitState.DUE
        return VisitState.OVERDUE

    def expected_forms(self, *, childbearing_potential: bool) -> list[Form]:
        """The forms this visit expects for this participant, in the order they are filled in."""
        order = list(FORM_LABELS)
        forms = set(self.definition.forms)
        if not childbearing_potential:
            forms.discard(Form.PREGNANCY_TEST)
        return sorted(forms, key=order.index)
