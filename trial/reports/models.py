"""Stored PDF visit reports, in versions that are never overwritten, and who downloaded which."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Visit
from trial.audit import audited


class ReportTrigger(models.TextChoices):
    VISIT_COMPLETED = "completed", _("Visit completed")
    ON_DEMAND = "on_demand", _("Requested")
    DATA_CHANGED = "changed", _("Visit data changed")


class VisitReportQuerySet(models.QuerySet):
    def visible_to(self, user) -> VisitReportQuerySet:
        return self.filter(visit__participant__in=Participant.objects.visible_to(user))


def report_path(report: VisitReport, filename: str) -> str:
    return f"reports/visits/{report.visit_id}/{filename}"


# checked_at is bookkeeping of the refresh tick, not a change of the report.
@audited(exclude=("checked_at",))
class VisitReport(models.Model):
    """One version of a visit's PDF report. A new version is added when what the report shows
    changes; the earlier ones stay, with their hashes."""

    visit = models.ForeignKey(
        Visit, on_delete=models.PROTECT, related_name="reports", verbose_name=_("visit")
    )
    version = models.PositiveIntegerField(_("version"))
    content_hash = models.CharField(
        _("content hash (SHA-256)"),
        max_length=64,
        help_text=_("Of the report's canonical data: everything it shows except when it was generated."),
    )
    file_sha256 = models.CharField(
        _("file SHA-256"), max_length=64, help_text=_("Of the PDF file as stored.")
    )
    pdf = models.FileField(_("PDF"), upload_to=report_path, max_length=300)
    trigger = models.CharField(_("made because"), max_length=10, choices=ReportTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    generated_at = models.DateTimeField(_("generated at"))
    render_seconds = models.DecimalField(_("render time (s)"), max_digits=6, decimal_places=2)
    checked_at = models.DateTimeField(
        _("last confirmed current at"),
        null=True,
        blank=True,
        help_text=_("When the refresh tick last found the visit's data unchanged since this version."),
    )

    objects = VisitReportQuerySet.as_manager()

    class Meta:
        ordering = ["visit", "-version"]
        verbose_name = _("visit report")
        verbose_name_plural = _("visit reports")
        constraints = [
            models.UniqueConstraint(fields=["visit", "version"], name="one_report_per_visit_version"),
            models.CheckConstraint(condition=models.Q(version__gte=1), name="report_version_from_1"),
        ]

    def __str__(self) -> str:
        return f"{self.visit} report v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("signatures:visit-sign", args=[self.visit_id])

    @property
    def filename(self) -> str:
        return f"{self.visit.participant.study_id}-{self.visit.code}-report-v{self.version}.pdf"


class ReportDownloadQuerySet(models.QuerySet):
    def visible_to(self, user) -> ReportDownloadQuerySet:
        return self.filter(report__visit__participant__in=Participant.objects.visible_to(user))


@audited
class ReportDownload(models.Model):
    """Who downloaded which report version when (an access record: rows are only added)."""

    report = models.ForeignKey(
        VisitReport, on_delete=models.PROTECT, related_name="downloads", verbose_name=_("report")
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    downloaded_at = models.DateTimeField(_("downloaded at"), auto_now_add=True)
    remote_addr = models.GenericIPAddressField(_("client address"), null=True, blank=True)

    objects = ReportDownloadQuerySet.as_manager()

    class Meta:
        ordering = ["-downloaded_at"]
        verbose_name = _("report download")
        verbose_name_plural = _("report downloads")

    def __str__(self) -> str:
        return f"{self.report} by {self.user} at {self.downloaded_at:%Y-%m-%d %H:%M}"
