"""Export pages: ask for an export, follow its progress, download it (own exports only, and only
while the person may still see every site it covers)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _

from trial.exports import services
from trial.exports.forms import ExportRequestForm
from trial.exports.models import ExportJob, ExportKind, ExportStatus
from trial.models import Site

_CONTENT_TYPES = {ExportKind.ODM: "application/xml", ExportKind.FHIR: "application/fhir+json"}


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


@permission_required(services.EXPORT_PERMISSION, raise_exception=True)
def export_download_view(request: HttpRequest, pk: int):
    job = get_object_or_404(ExportJob.objects.visible_to(request.user), pk=pk)
    if job.status != ExportStatus.DONE or not job.file:
        raise Http404
    sites = set(job.parameters.get("site_ids") or [])
    if sites - set(Site.objects.visible_to(request.user).values_list("pk", flat=True)):
        raise PermissionDenied
    response = FileResponse(
        job.file.open("rb"), as_attachment=True, filename=job.file.name.rsplit("/", 1)[-1]
    )
    response["Content-Type"] = _CONTENT_TYPES.get(job.kind, "text/csv; charset=utf-8")
    response["Cache-Control"] = "no-store"
    response["X-Content-SHA256"] = job.sha256
    return response


urlpatterns = [
    path("exports/", export_list_view, name="list"),
    path("exports/<int:pk>/download/", export_download_view, name="download"),
]
