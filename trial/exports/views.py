"""Export pages: ask for an export, follow its progress, download it (own exports only, and only
while the person may still see every site it covers)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from trial.exports import services
from trial.exports.forms import ExportRequestForm
from trial.exports.models import ExportJob, ExportStatus
from trial.models import Site

_CONTENT_TYPES = {
    "xml": "application/xml",
    "json": "application/fhir+json",
    "pdf": "application/pdf",
    "zip": "application/zip",
    "csv": "text/csv; charset=utf-8",
}


@permission_required(services.EXPORT_PERMISSION, raise_exception=True)
def export_list_view(request: HttpRequest):
    form = ExportRequestForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            services.export_request(
                actor=request.user, kind=form.cleaned_data["kind"], parameters=form.parameters()
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(request, _("The export has started; this page shows its progress."))
            return redirect("exports:list")
    jobs = list(ExportJob.objects.visible_to(request.user)[:50])
    context = {
        "form": form,
        "jobs": jobs,
        "refresh": any(job.is_active for job in jobs),
    }
    return render(request, "exports/export_list.html", context, status=400 if form.errors else 200)


def _own_job(request: HttpRequest, pk: int) -> ExportJob:
    """The person's own export, while they may still see every site it covers."""
    job = get_object_or_404(ExportJob.objects.visible_to(request.user), pk=pk)
    site_ids = job.parameters.get("site_ids") if isinstance(job.parameters, dict) else None
    # A job with malformed parameters never has a file (it fails); its status is still its owner's.
    sites = {i for i in site_ids if isinstance(i, int)} if isinstance(site_ids, list) else set()
    if sites - set(Site.objects.visible_to(request.user).values_list("pk", flat=True)):
        raise PermissionDenied
    return job


@require_safe  # read-only, like the download: 405 to anything but GET and HEAD
@permission_required(services.EXPORT_PERMISSION, raise_exception=True)
def export_status_view(request: HttpRequest, pk: int):
    """The job's progress for the exports page's script (static/js/export_progress.js)."""
    job = _own_job(request, pk)
    done = job.status == ExportStatus.DONE and bool(job.file)
    response = JsonResponse(
        {
            "status": job.status,
            "label": str(job.get_status_display()),
            "active": job.is_active,
            "percent": job.percent,
            "progress": job.progress,
            "total": job.total,
            "rows": job.row_count,
            "error": job.error,
            "download_url": reverse("exports:download", args=[job.pk]) if done else None,
            "sha256": job.sha256 if done else "",
        }
    )
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@permission_required(services.EXPORT_PERMISSION, raise_exception=True)
def export_download_view(request: HttpRequest, pk: int):
    job = _own_job(request, pk)
    if job.status != ExportStatus.DONE or not job.file:
        raise Http404
    filename = job.file.name.rsplit("/", 1)[-1]
    response = FileResponse(job.file.open("rb"), as_attachment=True, filename=filename)
    response["Content-Type"] = _CONTENT_TYPES.get(filename.rsplit(".", 1)[-1], "application/octet-stream")
    response["Cache-Control"] = "no-store"
    response["X-Content-SHA256"] = job.sha256
    return response


urlpatterns = [
    path("exports/", export_list_view, name="list"),
    path("exports/<int:pk>/download/", export_download_view, name="download"),
    path("exports/<int:pk>/status/", export_status_view, name="status"),
]
