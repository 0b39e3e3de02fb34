"""The ultrasound image page of one lesion at one visit: upload DICOM files, follow their
processing, look at the de-identified preview (frame by frame), measure with the calibrated
caliper, and save the measurement with its provenance.

Every image, preview and download goes through a view that checks the permission and the site
(`DicomFile.objects.visible_to`): another site's file is a 404, never a public media URL. The web
process never parses DICOM: an upload is stored raw and processed by `lesions.tasks`.
"""

from __future__ import annotations

import json
from functools import cached_property

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_safe

from lesions.dicom import services
from lesions.dicom.calibration import CalibrationError, no_calibration_reason
from lesions.dicom.forms import DicomUploadForm, ImageMeasurementForm, PixelReviewForm
from lesions.models import DicomFile, DicomStatus, Lesion, MeasurementSource, UltrasoundMeasurement
from lesions.services import MEASUREMENT_FIELDS
from participants.models import Visit
from trial.locks import lock_in_force, lock_message
from trial.protocol import Form


class DicomSizeLimitHandler(FileUploadHandler):
    """Stops reading a file as soon as it passes settings.DICOM_MAX_UPLOAD_MB: the rest of that
    file is skipped (never buffered), the other files of the request still arrive, and the
    names of the skipped ones are left on the request for the message."""

    def __init__(self, request=None):
        super().__init__(request)
        self.limit = settings.DICOM_MAX_UPLOAD_MB * 1024 * 1024
        self.received = 0
        request.dicom_too_large = []

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.request.dicom_too_large.append(self.file_name)
            raise SkipFile
        return raw_data

    def file_complete(self, file_size):
        return None


def _status_payload(dicom_file: DicomFile) -> dict:
    return {
        "id": dicom_file.pk,
        "status": dicom_file.status,
        "label": dicom_file.get_status_display(),
        "reason": dicom_file.rejection_reason,
        "url": reverse("lesions:dicom-page", args=[dicom_file.visit_id, dicom_file.lesion_id])
        + f"?file={dicom_file.pk}",
    }


class VisitLesionMixin(PermissionRequiredMixin):
    @cached_property
    def visit(self) -> Visit:
        return get_object_or_404(
            Visit.objects.visible_to(self.request.user).select_related("participant__site"),
            pk=self.kwargs["visit"],
        )

    @cached_property
    def lesion(self) -> Lesion:
        return get_object_or_404(Lesion, pk=self.kwargs["lesion"], participant_id=self.visit.participant_id)

    def page_url(self, dicom_file: DicomFile | None = None) -> str:
        url = reverse("lesions:dicom-page", args=[self.visit.pk, self.lesion.pk])
        return f"{url}?file={dicom_file.pk}" if dicom_file else url


class DicomPageView(VisitLesionMixin, View):
    permission_required = ("lesions.view_dicomfile", "lesions.view_ultrasoundmeasurement")
    template_name = "lesions/dicom_page.html"

    def get(self, request, *args, **kwargs):
        return self.render()

    @cached_property
    def files(self) -> list[DicomFile]:
        return list(
            DicomFile.objects.filter(visit=self.visit, lesion=self.lesion).select_related("uploaded_by")
        )

    @cached_property
    def selected(self) -> DicomFile | None:
        wanted = self.request.GET.get("file") or self.request.POST.get("file")
        ready = [f for f in self.files if f.status == DicomStatus.READY]
        if wanted:
            chosen = next((f for f in ready if str(f.pk) == str(wanted)), None)
            if chosen is None and not any(str(f.pk) == str(wanted) for f in self.files):
                raise Http404
            return chosen
        images = [f for f in ready if f.is_image]
        return (images or ready or [None])[-1]

    @cached_property
    def measurement(self) -> UltrasoundMeasurement | None:
        return UltrasoundMeasurement.objects.filter(visit=self.visit, lesion=self.lesion).first()

    def measurement_form(self, data=None) -> ImageMeasurementForm:
        initial = {"source": MeasurementSource.MANUAL}
        if self.measurement is not None:
            initial.update({name: getattr(self.measurement, name) for name in MEASUREMENT_FIELDS})
            initial["row_version"] = self.measurement.row_version
        elif self.selected is not None:
            initial["device"] = self.selected.device
        return ImageMeasurementForm(data, initial=initial, prefix="m")

    @cached_property
    def lock(self):
        """Locked data: the page shows why and offers no upload, measurement or review."""
        return lock_in_force(visit=self.visit)

    def refuse_if_locked(self):
        if self.lock is None:
            return None
        messages.error(self.request, lock_message(self.lock))
        return redirect(self.page_url())

    @property
    def can_upload(self) -> bool:
        return (
            self.request.user.has_perm("lesions.add_dicomfile") and self.open_for_entry and self.lock is None
        )

    @property
    def open_for_entry(self) -> bool:
        return Form.MEASUREMENTS in self.visit.definition.forms and self.visit.status != "missed"

    @property
    def can_measure(self) -> bool:
        return (
            self.request.user.has_perm("lesions.add_ultrasoundmeasurement")
            and self.open_for_entry
            and self.lock is None
        )

    @property
    def can_review_pixels(self) -> bool:
        return self.request.user.has_perm("lesions.review_dicom_pixels") and self.lock is None

    def render(self, *, upload_form=None, measurement_form=None, review_form=None, status=200):
        selected = self.selected
        calibration_problem = None
        if selected is not None and selected.is_image:
            calibration_problem = no_calibration_reason(selected.regions)
        frames = []
        if selected is not None:
            frames = [
                reverse("lesions:dicom-frame", args=[selected.pk, number])
                for number in range(1, len(selected.preview_paths) + 1)
            ]
        context = {
            "visit": self.visit,
            "participant": self.visit.participant,
            "lesion": self.lesion,
            "files": [
                {
                    "file": f,
                    "status": _status_payload(f),
                    "acquisition_warning": services.acquisition_warning(f),
                    "selected": selected is not None and f.pk == selected.pk,
                }
                for f in self.files
            ],
            "selected": selected,
            "selected_warning": services.acquisition_warning(selected) if selected else None,
            "frames": frames,
            "regions": selected.regions if selected else [],
            "calibration_problem": calibration_problem,
            "upload_form": upload_form or DicomUploadForm(),
            "measurement_form": measurement_form or self.measurement_form(),
            "measurement": self.measurement,
            "review_form": review_form or PixelReviewForm(prefix="review"),
            "can_review_pixels": self.can_review_pixels and selected is not None,
            "can_upload": self.can_upload,
            "can_measure": self.can_measure and selected is not None,
            "max_upload_mb": settings.DICOM_MAX_UPLOAD_MB,
            "lock_message": lock_message(self.lock) if self.lock else "",
            "table_url": reverse("lesions:visit-table", args=[self.visit.pk]),
        }
        return render(self.request, self.template_name, context, status=status)


@method_decorator(csrf_exempt, name="dispatch")
class DicomUploadView(DicomPageView):
    """POST only. The size-limit handler must be installed before the body is read, which the
    CSRF middleware would do first; so CSRF is checked here, after installing it (Django's
    documented pattern for per-view upload handlers)."""

    permission_required = ("lesions.add_dicomfile",)
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        request.upload_handlers.insert(0, DicomSizeLimitHandler(request))
        return self._post(request)

    @method_decorator(csrf_protect)
    def _post(self, request):
        if refused := self.refuse_if_locked():
            return refused
        if not self.open_for_entry:
            raise PermissionDenied
        form = DicomUploadForm(request.POST, request.FILES)
        too_large = getattr(request, "dicom_too_large", [])
        for name in too_large:
            messages.error(
                request,
                _("%(name)s was not uploaded: it is larger than the limit of %(limit)s MB per file.")
                % {"name": name, "limit": settings.DICOM_MAX_UPLOAD_MB},
            )
        if not form.is_valid():
            if too_large:
                return redirect(self.page_url())
            return self.render(upload_form=form, status=400)
        uploaded = []
        for upload in form.cleaned_data["files"]:
            try:
                uploaded.append(
                    services.dicom_file_upload(
                        actor=request.user, lesion=self.lesion, visit=self.visit, upload=upload
                    )
                )
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
        if uploaded:
            messages.success(
                request,
                _("%(n)s file(s) received; they are being checked and de-identified.") % {"n": len(uploaded)},
            )
        return redirect(self.page_url())


class DicomMeasurementView(DicomPageView):
    """POST the measurement form of the image page (caliper, structured report or manual)."""

    permission_required = ("lesions.add_ultrasoundmeasurement",)
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        if refused := self.refuse_if_locked():
            return refused
        if not self.open_for_entry:
            raise PermissionDenied
        selected = self.selected
        if selected is None:
            raise Http404
        form = self.measurement_form(request.POST)
        if not form.is_valid():
            return self.render(measurement_form=form, status=400)
        try:
            result = services.dicom_measurement_save(
                actor=request.user,
                dicom_file=selected,
                measurement=form.measurement(),
                version=form.cleaned_data.get("row_version"),
                reason=form.cleaned_data.get("reason") or "",
            )
        except ValidationError as exc:
            messages_list = []
            for value in getattr(exc, "error_dict", {"": exc}).values():
                for error in value if isinstance(value, list) else [value]:
                    messages_list.extend(getattr(error, "messages", [str(error)]))
            form.add_error(None, messages_list or exc.messages)
            return self.render(measurement_form=form, status=400)
        saved = result.measurements[0]
        messages.success(
            request,
            _("Measurement of %(lesion)s saved: %(l)s x %(w)s mm (%(source)s).")
            % {
                "lesion": self.lesion.label,
                "l": saved.length_mm,
                "w": saved.width_mm,
                "source": saved.get_source_display().lower(),
            },
        )
        for warning in result.warnings:
            messages.warning(request, warning)
        return redirect(self.page_url(selected))


class DicomPixelReviewView(DicomPageView):
    """POST the burned-in text review of the selected image."""

    permission_required = ("lesions.review_dicom_pixels",)
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        selected = self.selected
        if selected is None:
            raise Http404
        form = PixelReviewForm(request.POST, prefix="review")
        if form.is_valid():
            try:
                services.dicom_pixel_review(
                    actor=request.user,
                    dicom_file=selected,
                    outcome=form.cleaned_data["outcome"],
                    note=form.cleaned_data["note"],
                )
            except ValidationError as exc:
                form.add_error(None, exc.messages)
        if not form.is_valid():
            return self.render(review_form=form, status=400)
        messages.success(request, _("Review of the image for burned-in text saved."))
        return redirect(self.page_url(selected))


# --- Per-file endpoints ----------------------------------------------------------------------


class DicomFileMixin(PermissionRequiredMixin):
    permission_required = ("lesions.view_dicomfile",)

    @cached_property
    def dicom_file(self) -> DicomFile:
        return get_object_or_404(
            DicomFile.objects.visible_to(self.request.user).select_related("visit", "lesion"),
            pk=self.kwargs["pk"],
        )


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class DicomStatusView(DicomFileMixin, View):
    """JSON for the page's polling: pending -> ready or rejected (with the reason)."""

    def get(self, request, *args, **kwargs):
        response = JsonResponse(_status_payload(self.dicom_file))
        response["Cache-Control"] = "no-store"
        return response


def _private_file(name: str, *, content_type: str, filename: str | None = None) -> FileResponse:
    if not name or not default_storage.exists(name):
        raise Http404
    response = FileResponse(
        default_storage.open(name, "rb"),
        content_type=content_type,
        as_attachment=filename is not None,
        filename=filename or "",
    )
    response["Cache-Control"] = "private, no-store"
    return response


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class DicomFrameView(DicomFileMixin, View):
    def get(self, request, *args, **kwargs):
        paths = self.dicom_file.preview_paths
        number = self.kwargs["frame"]
        if self.dicom_file.status != DicomStatus.READY or not 1 <= number <= len(paths):
            raise Http404
        return _private_file(paths[number - 1], content_type="image/png")


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class DicomDownloadView(DicomFileMixin, View):
    """The de-identified file (the original is never kept)."""

    def get(self, request, *args, **kwargs):
        dicom_file = self.dicom_file
        if dicom_file.status != DicomStatus.READY:
            raise Http404
        filename = f"{dicom_file.visit.participant.study_id}-{dicom_file.visit.code}-{dicom_file.lesion.label}-{dicom_file.pk}.dcm"
        return _private_file(
            dicom_file.deidentified_path, content_type="application/dicom", filename=filename
        )


class CaliperView(DicomFileMixin, View):
    """POST {"frame": n, "points": {"length": [[x, y], [x, y]], ...}} -> millimetres per
    dimension from the file's calibration, or 400 with the reason."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        dicom_file = self.dicom_file  # another site's file is a 404 whatever the body says
        try:
            payload = json.loads(request.body or b"{}")
            frame = int(payload.get("frame") or 1)
            points = payload.get("points") or {}
            if not isinstance(points, dict):
                raise ValueError
        except (ValueError, TypeError, AttributeError, OverflowError):  # OverflowError: int(inf)
            return JsonResponse({"error": _("The caliper request could not be read.")}, status=400)
        try:
            distances = services.caliper_distances(dicom_file=dicom_file, frame_number=frame, points=points)
        except CalibrationError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse(
            {
                "frame": frame,
                "distances": {
                    name: {"mm": str(d.mm), "mm_exact": round(d.mm_exact, 4), "region": d.region_index}
                    for name, d in distances.items()
                },
            }
        )


urlpatterns = [
    path("visits/<int:visit>/lesions/<int:lesion>/images/", DicomPageView.as_view(), name="dicom-page"),
    path(
        "visits/<int:visit>/lesions/<int:lesion>/images/upload/",
        DicomUploadView.as_view(),
        name="dicom-upload",
    ),
    path(
        "visits/<int:visit>/lesions/<int:lesion>/images/measurement/",
        DicomMeasurementView.as_view(),
        name="dicom-measurement",
    ),
    path(
        "visits/<int:visit>/lesions/<int:lesion>/images/pixel-review/",
        DicomPixelReviewView.as_view(),
        name="dicom-pixel-review",
    ),
    path("dicom/<int:pk>/status/", DicomStatusView.as_view(), name="dicom-status"),
    path("dicom/<int:pk>/frames/<int:frame>.png", DicomFrameView.as_view(), name="dicom-frame"),
    path("dicom/<int:pk>/download/", DicomDownloadView.as_view(), name="dicom-download"),
    path("dicom/<int:pk>/caliper/", CaliperView.as_view(), name="dicom-caliper"),
]
