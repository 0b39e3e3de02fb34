"""Report pages: generate a report now, download a version (permission-checked and recorded).

The versions are listed on the visit's review page (`trial.signatures.views`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from participants.models import Visit, VisitStatus
from trial.network import client_address
from trial.reports import services
from trial.reports.models import ReportTrigger, VisitReport
from trial.reports.tasks import report_enqueue_on_commit


@require_POST
@permission_required("reports.add_visitreport", raise_exception=True)
def report_generate_view(request: HttpRequest, pk: int):
    """Ask the worker for a report now (a new version only if the data changed)."""
    visit = get_object_or_404(Visit.objects.visible_to(request.user), pk=pk)
    if visit.status != VisitStatus.COMPLETED:
        messages.error(request, _("A report is made once the visit is completed."))
    else:
        report_enqueue_on_commit(visit.pk, ReportTrigger.ON_DEMAND, request.user.pk)
        messages.success(request, _("The report is being generated; reload this page in a few seconds."))
    return redirect(reverse("signatures:visit-sign", args=[visit.pk]))


# Downloads answer GET and HEAD only (405 to anything else, before any other check): a download
# changes nothing but its own access record, which a HEAD (headers only, no file) does not make.
@require_safe
@permission_required("reports.view_visitreport", raise_exception=True)
def report_download_view(request: HttpRequest, pk: int):
    report = get_object_or_404(
        VisitReport.objects.visible_to(request.user).select_related("visit__participant__site"), pk=pk
    )
    if request.method == "GET":
        services.report_download_record(
            actor=request.user, report=report, remote_addr=client_address(request) or None
        )
    response = FileResponse(report.pdf.open("rb"), as_attachment=True, filename=report.filename)
    response["Content-Type"] = "application/pdf"
    response["Cache-Control"] = "no-store"
    response["X-Content-SHA256"] = report.file_sha256
    return response


urlpatterns = [
    path("reports/visits/<int:pk>/generate/", report_generate_view, name="visit-report-generate"),
    path("reports/<int:pk>/download/", report_download_view, name="report-download"),
]
