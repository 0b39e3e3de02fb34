"""Queries (data clarification requests) on one field of one clinical record.

A query names its record by content type and id (any audited clinical model) and, optionally, a
field of it; it carries the participant and visit so lists filter and count without touching
the record's own table. States: open -> answered -> closed, and closed or answered -> open again
(re-opened). Every change is audited (`@audited`), so the history of a query is its event table.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Visit
from trial.audit import audited
from trial.models import Site


class QueryState(models.TextChoices):
    OPEN = "open", _("Open")
    ANSWERED = "answered", _("Answered")
    CLOSED = "closed", _("Closed")


class QueryQuerySet(models.QuerySet):
    def visible_to(self, user) -> QueryQuerySet:
        # By site, the rule of Participant.visible_to: a subquery of a few sites, not of every
        # visible participant (the query list at 10,000 participants).
        return self.filter(participant__site__in=Site.objects.visible_to(user))

    def unresolved(self) -> QueryQuerySet:
        """Open or answered: still waiting for someone."""
        return self.exclude(state=QueryState.CLOSED)

    def for_lists(self) -> QueryQuerySet:
        return self.select_related("participant__site", "visit", "content_type", "assignee", "raised_by")


@audited
class Query(models.Model):
    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="queries", verbose_name=_("participant")
    )
    visit = models.ForeignKey(
        Visit,
        on_delete=models.PROTECT,
        related_name="queries",
        null=True,
        blank=True,
        verbose_name=_("visit"),
    )
    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, related_name="+", verbose_name=_("form")
    )
    object_id = models.PositiveBigIntegerField(_("record id"))
    field_name = models.CharField(
        _("field"), max_length=100, blank=True, help_text=_("Blank: the query is about the whole record.")
    )
    text = models.TextField(_("query"))
    suggested_value = models.CharField(_("suggested value"), max_length=200, blank=True)
    state = models.CharField(_("state"), max_length=8, choices=QueryState.choices, default=QueryState.OPEN)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("raised by"),
        help_text=_("Blank: raised by an automatic check."),
    )
    raised_at = models.DateTimeField(_("raised at"))
    answer = models.TextField(_("answer"), blank=True)
    data_corrected = models.BooleanField(_("data corrected"), default=False)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("answered by"),
    )
    answered_at = models.DateTimeField(_("answered at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    reopen_count = models.PositiveSmallIntegerField(_("times re-opened"), default=0)
    check_key = models.CharField(
        _("automatic check"),
        max_length=100,
        blank=True,
        help_text=_("Which automatic check raised the query and about what; blank for a person's query."),
    )

    objects = QueryQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-pk"]
        verbose_name = _("query")
        verbose_name_plural = _("queries")
        permissions = [
            ("raise_query", _("Can raise, close and re-open queries")),
            ("answer_query", _("Can answer queries")),
        ]
        constraints = [
            # An automatic check raises a thing once; the database refuses a second copy even
            # when two runs overlap.
            models.UniqueConstraint(
                fields=["check_key"], condition=~models.Q(check_key=""), name="one_query_per_automatic_check"
            ),
            models.CheckConstraint(
                condition=~models.Q(state="answered") | models.Q(answered_at__isnull=False),
                name="answered_query_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(state="closed") | models.Q(closed_at__isnull=False),
                name="closed_query_has_time",
            ),
            models.CheckConstraint(condition=~models.Q(text=""), name="query_has_text"),
        ]
        indexes = [models.Index(fields=["content_type", "object_id"]), models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"Q-{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("data_management:query-detail", args=[self.pk])

    def age_days(self, *, on: dt.date) -> int:
        """Whole days since the query was raised, counted to `on` (the site's today)."""
        return (on - self.raised_at.date()).days

    @property
    def record(self) -> models.Model | None:
        return self.content_type.get_object_for_this_type(pk=self.object_id)

    @property
    def form_label(self) -> str:
        return str(self.content_type.model_class()._meta.verbose_name)

    @property
    def field_label(self) -> str:
        if not self.field_name:
            return ""
        return str(self.content_type.model_class()._meta.get_field(self.field_name).verbose_name)


# --- Source data verification -----------------------------------------------------------------


class VerificationQuerySet(models.QuerySet):
    def visible_to(self, user) -> VerificationQuerySet:
        return self.filter(participant__in=Participant.objects.visible_to(user))


@audited
class Verification(models.Model):
    """A monitor compared records with the source, in one action: a whole participant, a visit,
    one form (a kind of record at a visit, e.g. the visit's measurement table, or one record such
    as an AE or the eligibility assessment), or single fields of one record. Each verified record
    is kept with the id of its last audit event at that moment (`VerifiedRecord`); a newer event
    in the record's event table, or a record that was not there, means the data changed since:
    the verification shows as cleared. A field-level verification is cleared only by a change
    of its own fields' values."""

    participant = models.ForeignKey(
        Participant, on_delete=models.PROTECT, related_name="verifications", verbose_name=_("participant")
    )
    visit = models.ForeignKey(
        Visit,
        on_delete=models.PROTECT,
        related_name="verifications",
        null=True,
        blank=True,
        verbose_name=_("visit"),
        help_text=_("Blank: every record of the participant was verified."),
    )
    content_type = models.ForeignKey(
        ContentType,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("form"),
        help_text=_("Blank: every kind of record of the visit (or participant) was verified."),
    )
    object_id = models.PositiveBigIntegerField(
        _("record id"),
        null=True,
        blank=True,
        help_text=_("Blank with a form: every record of that form at the visit (e.g. each lesion's row)."),
    )
    field_names = ArrayField(
        models.CharField(max_length=100),
        verbose_name=_("fields"),
        default=list,
        blank=True,
        help_text=_("Blank: the whole form; otherwise only these fields of the record were verified."),
    )
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("verified by")
    )
    verified_at = models.DateTimeField(_("verified at"))

    objects = VerificationQuerySet.as_manager()

    class Meta:
        ordering = ["-verified_at", "-pk"]
        verbose_name = _("source data verification")
        verbose_name_plural = _("source data verifications")
        permissions = [("verify_source", _("Can mark records as source-verified"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(object_id__isnull=True) | models.Q(content_type__isnull=False),
                name="verified_record_names_its_form",
            ),
            models.CheckConstraint(
                condition=models.Q(field_names=[]) | models.Q(object_id__isnull=False),
                name="verified_fields_belong_to_one_record",
            ),
        ]

    def __str__(self) -> str:
        return f"SDV {self.visit or self.participant.study_id} {self.verified_at:%Y-%m-%d}"


class VerifiedRecordQuerySet(models.QuerySet):
    def visible_to(self, user) -> VerifiedRecordQuerySet:
        return self.filter(verification__participant__in=Participant.objects.visible_to(user))


@audited(history_page=False)
class VerifiedRecord(models.Model):
    verification = models.ForeignKey(
        Verification, on_delete=models.PROTECT, related_name="records", verbose_name=_("verification")
    )
    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, related_name="+", verbose_name=_("form")
    )
    object_id = models.PositiveBigIntegerField(_("record id"))
    last_event_id = models.PositiveBigIntegerField(_("last audit event at verification"))

    objects = VerifiedRecordQuerySet.as_manager()

    class Meta:
        verbose_name = _("verified record")
        verbose_name_plural = _("verified records")
        constraints = [
            models.UniqueConstraint(
                fields=["verification", "content_type", "object_id"],
                name="record_verified_once_per_verification",
            )
        ]

    def __str__(self) -> str:
        return f"{self.content_type.model} #{self.object_id}"


# --- Locks ------------------------------------------------------------------------------------


class LockScope(models.TextChoices):
    VISIT = "visit", _("Visit")
    PARTICIPANT = "participant", _("Participant")
    STUDY = "study", _("Whole study")


class DataLockQuerySet(models.QuerySet):
    def visible_to(self, user) -> DataLockQuerySet:
        if not getattr(user, "is_authenticated", False):
            return self.none()
        # A study lock concerns every site.
        return self.filter(
            models.Q(scope=LockScope.STUDY) | models.Q(participant__in=Participant.objects.visible_to(user))
        )

    def active(self) -> DataLockQuerySet:
        return self.filter(released_at__isnull=True)


@audited
class DataLock(models.Model):
    """Locked data are read-only. The refusal is not in Python: PostgreSQL triggers on the
    clinical tables (`edc_refuse_locked`, installed by migrations 0004 and 0005) read this table for every
    inserted, updated or deleted row, so no code path (service, admin, `QuerySet.update`, raw SQL)
    can write locked data. Releasing a lock keeps the row (who, when, why)."""

    scope = models.CharField(_("scope"), max_length=12, choices=LockScope.choices)
    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("participant"),
    )
    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("visit")
    )
    locked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("locked by")
    )
    locked_at = models.DateTimeField(_("locked at"))
    reason = models.CharField(
        _("why locked"),
        max_length=300,
        blank=True,
        help_text=_("Shown on every page of the locked data, e.g. 'Database lock for the interim analysis'."),
    )
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("unlocked by"),
    )
    released_at = models.DateTimeField(_("unlocked at"), null=True, blank=True)
    release_reason = models.CharField(_("why unlocked"), max_length=300, blank=True)

    objects = DataLockQuerySet.as_manager()

    class Meta:
        ordering = ["-locked_at", "-pk"]
        verbose_name = _("data lock")
        verbose_name_plural = _("data locks")
        permissions = [("manage_locks", _("Can lock and unlock data"))]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope="study", participant__isnull=True, visit__isnull=True)
                | models.Q(scope="participant", participant__isnull=False, visit__isnull=True)
                | models.Q(scope="visit", participant__isnull=False, visit__isnull=False),
                name="lock_names_its_scope",
            ),
            models.CheckConstraint(
                condition=models.Q(released_at__isnull=True) | ~models.Q(release_reason=""),
                name="unlock_has_reason",
            ),
            models.UniqueConstraint(
                fields=["scope", "participant", "visit"],
                condition=models.Q(released_at__isnull=True),
                nulls_distinct=False,
                name="one_active_lock_per_scope",
            ),
        ]

    def __str__(self) -> str:
        if self.scope == LockScope.VISIT:
            return str(_("Lock of visit %(visit)s") % {"visit": self.visit})
        if self.scope == LockScope.PARTICIPANT:
            return str(_("Lock of participant %(id)s") % {"id": self.participant.study_id})
        return str(_("Study lock"))

    @property
    def is_active(self) -> bool:
        return self.released_at is None
