"""Visit report workflows: generate a version when the content changed, find stale reports,
record downloads."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import zoneinfo
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import DateTimeField, Exists, Func, OuterRef, Q, Subquery
from django.template.loader import render_to_string
from django.utils import timezone

from lesions.models import DicomFile, DicomStatus, UltrasoundMeasurement
from participants.models import Visit, VisitStatus
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, event_model_for
from trial.models import User
from trial.reports import charts
from trial.reports.content import record_event_sources, sha256_of
from trial.reports.data import report_data
from trial.reports.models import ReportDownload, ReportTrigger, VisitReport
from trial.reports.pdf import Asset, html_to_pdf
from trial.signatures.models import Signature
from trial.signatures.services import signatures_void_if_changed

TREND_ASSET = "lesion-trend.svg"


class TransactionNow(Func):
    """PostgreSQL's now(): the transaction's start, the clock pghistory stamps events with (Django's
    Now() is the statement's time, which would hide edits made earlier in the same transaction)."""

    template = "NOW()"
    output_field = DateTimeField()


def signature_block(visit: Visit) -> list[dict[str, str]]:
    """The signatures printed in the report: printed name, UTC time, meaning, hash, status."""
    return [
        {
            "printed_name": s.printed_name,
            "meaning": str(s.get_meaning_display()),
            "signed_at": s.signed_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "content_hash": s.content_hash,
            "status": str(s.get_status_display()),
            "valid": s.status == "valid",
            "voided_at": s.voided_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            if s.voided_at
            else "",
        }
        for s in Signature.objects.filter(visit=visit).order_by("signed_at", "pk")
    ]


def measured_images(visit: Visit) -> list[dict[str, Any]]:
    """The visit's ready (de-identified) ultrasound images, part of the report's content."""
    return [
        {
            "id": f.pk,
            "lesion": f.lesion.label,
            "frames": f.frame_count,
            "original_sha256": f.original_sha256,
            "burned_in_annotation": f.burned_in_annotation,
        }
        for f in DicomFile.objects.filter(visit=visit, status=DicomStatus.READY)
        .select_related("lesion")
        .order_by("lesion__label", "pk")
        if f.preview_paths
    ]


def current_report_data(visit: Visit) -> tuple[dict, str]:
    data = report_data(visit, signatures=signature_block(visit))
    data["images"] = measured_images(visit)
    return data, sha256_of(data)


def _image_assets(images: list[dict[str, Any]]) -> dict[str, Asset]:
    """First-frame PNG of each image, handed to the renderer as a private asset (never a URL)."""
    paths = dict(
        DicomFile.objects.filter(pk__in=[i["id"] for i in images]).values_list("pk", "preview_paths")
    )
    assets = {}
    for image in images:
        previews = paths.get(image["id"]) or []
        if previews and default_storage.exists(previews[0]):
            with default_storage.open(previews[0], "rb") as handle:
                assets[f"image-{image['id']}"] = Asset(handle.read(), "image/png")
    return assets


def render_report(data: dict, *, content_hash: str, generated_at: dt.datetime, version: int) -> bytes:
    trend = data["trend"]
    svg = charts.lesion_trend_svg(
        title="Longest diameter by visit",
        y_title="mm",
        x_labels=trend["x_labels"],
        series=[charts.Series(s["label"], s["values"]) for s in trend["series"]],
    )
    zone = zoneinfo.ZoneInfo(data["header"]["site_time_zone"])
    html = render_to_string(
        "reports/visit_report.html",
        {
            "data": data,
            "content_hash": content_hash,
            "version": version,
            "generated_utc": generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "generated_local": generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
            "trend_src": f"edc-asset:{TREND_ASSET}",
            "has_trend": bool(trend["series"]),
            "images": data.get("images", []),
        },
    )
    assets = {
        TREND_ASSET: Asset(svg.encode("utf-8"), "image/svg+xml"),
        **_image_assets(data.get("images", [])),
    }
    return html_to_pdf(html, assets=assets).pdf


def latest_report(visit: Visit) -> VisitReport | None:
    return VisitReport.objects.filter(visit=visit).order_by("-version").first()


@transaction.atomic
def visit_report_generate(
    *, visit_id: int, trigger: str = ReportTrigger.ON_DEMAND, actor: User | None = None
) -> VisitReport | None:
    """Make a new report version of a completed visit if what it shows changed since the latest
    version; otherwise return the latest. Idempotent: a repeated task adds nothing.

    Renders inside the transaction that holds the visit's row lock, so two workers cannot both add
    version n+1 (the unique constraint would refuse the second anyway)."""
    visit = Visit.objects.select_for_update().select_related("participant__site").get(pk=visit_id)
    require_site_permission(actor, "reports.add_visitreport", visit.participant.site)
    if visit.status != VisitStatus.COMPLETED:
        return None
    # A signature whose records changed is void before the report prints its status.
    signatures_void_if_changed(visit)
    data, content_hash = current_report_data(visit)
    latest = latest_report(visit)
    if latest is not None and latest.content_hash == content_hash:
        VisitReport.objects.filter(pk=latest.pk).update(checked_at=TransactionNow())
        return latest
    version = (latest.version + 1) if latest else 1
    generated_at = timezone.now()
    started = time.monotonic()
    pdf = render_report(data, content_hash=content_hash, generated_at=generated_at, version=version)
    seconds = Decimal(f"{time.monotonic() - started:.2f}")
    report = VisitReport(
        visit=visit,
        version=version,
        content_hash=content_hash,
        file_sha256=hashlib.sha256(pdf).hexdigest(),
        trigger=trigger,
        requested_by=actor,
        generated_at=generated_at,
        render_seconds=min(seconds, Decimal("9999.99")),
    )
    with audit_context(
        reason=f"visit report v{version}: {ReportTrigger(trigger).label}", **actor_metadata(actor)
    ):
        # Storage.save never overwrites: a name taken gets a suffix.
        report.pdf.save(f"{visit.code}-v{version}-{content_hash[:12]}.pdf", ContentFile(pdf), save=False)
        report.save()
    VisitReport.objects.filter(pk=report.pk).update(checked_at=TransactionNow())
    return report


def report_is_stale(visit: Visit, report: VisitReport | None) -> bool:
    """Does the latest report show other data than the visit now holds? (A few queries: for one
    visit's page, not for lists.)"""
    if report is None:
        return visit.status == VisitStatus.COMPLETED
    return current_report_data(visit)[1] != report.content_hash


def visits_changed_since_report(visits=None):
    """Completed visits with no report, or with an audit event not older than the last time their
    latest report was found current, in any table the report reads (including earlier measurements of the same lesions, which change
    the change from baseline). One query; the caller confirms each candidate by its hash."""
    visits = Visit.objects.filter(status=VisitStatus.COMPLETED) if visits is None else visits
    # Compared in the database's clock (pghistory stamps events with the transaction's now(),
    # checked_at is set with now() too); ">=" keeps an edit in the report's own transaction.
    latest_at = Subquery(
        VisitReport.objects.filter(visit=OuterRef("pk")).order_by("-version").values("checked_at")[:1]
    )
    newer = {"pgh_created_at__gte": OuterRef("report_at")}
    sources = [(model, {lookup: OuterRef("pk")}) for model, lookup in record_event_sources()]
    sources += [
        # Earlier and later measurements of the same lesions change the change from baseline.
        (UltrasoundMeasurement, {"lesion__participant": OuterRef("participant_id")}),
        (Signature, {"visit_id": OuterRef("pk")}),
    ]
    changed = Q(report_at__isnull=True)
    for model, filters in sources:
        changed |= Exists(event_model_for(model).objects.filter(**filters, **newer))
    return visits.annotate(report_at=latest_at).filter(changed)


def report_download_record(*, actor: User, report: VisitReport, remote_addr: str | None) -> ReportDownload:
    require_site_permission(actor, "reports.view_visitreport", report.visit.participant.site)
    with audit_context(reason=f"report v{report.version} downloaded", **actor_metadata(actor)):
        return ReportDownload.objects.create(report=report, user=actor, remote_addr=remote_addr)


def report_versions(visit: Visit) -> list[VisitReport]:
    return list(VisitReport.objects.filter(visit=visit).select_related("requested_by").order_by("-version"))
