"""Export jobs: who asked for which export with which parameters, its progress and its file."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from trial.audit import audited


class ExportKind(models.TextChoices):
    DICTIONARY = "dictionary", _("Data dictionary (CSV)")
    CSV_LONG = "csv_long", _("All data, long format (CSV, one row per value)")
    CSV_WIDE = "csv_wide", _("One form, wide format (CSV, one row per record)")
    ODM = "odm", _("CDISC ODM 1.3.2 (XML)")
    FHIR = "fhir", _("Questionnaire responses, FHIR R4 bundle (JSON)")
    DEIDENTIFIED = "deidentified", _("De-identified data, long format (CSV, HIPAA Safe Harbor)")
    AUDIT_TRAIL = "audit_trail", _("Audit trail (CSV)")
    AUDIT_TRAIL_PDF = "audit_trail_pdf", _("Audit trail (PDF for inspectors; ZIP of PDF parts when long)")


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Ready")
    FAILED = "failed", _("Failed")


class ExportJobQuerySet(models.QuerySet):
    def visible_to(self, user) -> ExportJobQuerySet:
        """A person sees and downloads only the exports they asked for."""
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        return self.filter(requested_by=user)


def export_path(job: ExportJob, filename: str) -> str:
    return f"exports/{job.pk}/{filename}"


# progress is bookkeeping while the job runs, not a change worth an audit event.
@audited(exclude=("progress",))
class ExportJob(models.Model):
    kind = models.CharField(_("export"), max_length=20, choices=ExportKind.choices)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("requested by")
    )
    requested_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    progress = models.PositiveIntegerField(_("records done"), default=0)
    total = models.PositiveIntegerField(_("records to do"), default=0)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    file = models.FileField(_("file"), upload_to=export_path, max_length=300, blank=True)
    sha256 = models.CharField(_("file SHA-256"), max_length=64, blank=True)
    row_count = models.PositiveIntegerField(_("rows"), null=True, blank=True)
    error = models.CharField(_("why it failed"), max_length=500, blank=True)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-pk"]
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        permissions = [("export_data", _("Can export trial data"))]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(status="done") | ~models.Q(sha256=""), name="finished_export_has_hash"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("exports:download", args=[self.pk])

    @property
    def percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.progress / self.total))

    @property
    def is_active(self) -> bool:
        return self.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)
