"""The visit review page (records, report versions, signatures; sign) and the investigator's
queue of visits waiting for a signature."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.generic import TemplateView

from participants.models import Visit, VisitStatus
from trial.reports import services as report_services
from trial.reports.content import sha256_of, visit_content_hash
from trial.reports.data import report_data
from trial.signatures import services
from trial.signatures.forms import QueueSignForm, SignForm
from trial.signatures.models import Signature, SignatureStatus


class VisitSignView(PermissionRequiredMixin, TemplateView):
    """Review a completed visit: its records as the report shows them, the report versions with
    their hashes, the signatures with their status, and (for investigators) the sign form."""

    permission_required = "reports.view_visitreport"
    template_name = "signatures/visit_sign.html"

    @cached_property
    def visit(self) -> Visit:
        return get_object_or_404(
            Visit.objects.visible_to(self.request.user).select_related("participant__site"),
            pk=self.kwargs["pk"],
        )

    def can_sign(self) -> bool:
        return (
            self.request.user.has_perm("signatures.sign_visit") and self.visit.status == VisitStatus.COMPLETED
        )

    def form(self, data=None) -> SignForm:
        return SignForm(data, code_required=services.second_factor_due(self.request.session))

    def get_context_data(self, **kwargs):
        visit = self.visit
        # Read-time check: a signature whose records changed is void before anyone sees it as valid.
        services.signature_void_if_changed_for_visit(visit)
        signatures = list(Signature.objects.filter(visit=visit).order_by("-signed_at"))
        reports = report_services.report_versions(visit)
        latest = reports[0] if reports else None
        data = report_data(visit, signatures=report_services.signature_block(visit))
        current_hash = sha256_of(data)
        kwargs.setdefault("form", self.form() if self.can_sign() else None)
        return super().get_context_data(
            visit=visit,
            participant=visit.participant,
            data=data,
            reports=reports,
            report_stale=latest is None or latest.content_hash != current_hash,
            signatures=signatures,
            valid_signature=next((s for s in signatures if s.status == SignatureStatus.VALID), None),
            records_hash=visit_content_hash(visit),
            can_generate=self.request.user.has_perm("reports.add_visitreport")
            and visit.status == VisitStatus.COMPLETED,
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not self.can_sign():
            raise PermissionDenied
        form = self.form(request.POST)
        if form.is_valid():
            try:
                services.visits_sign(
                    actor=request.user,
                    visits=[self.visit],
                    meaning=form.cleaned_data["meaning"],
                    password=form.cleaned_data["password"],
                    otp_token=form.cleaned_data.get("otp_token", ""),
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, _("Visit signed. The report's new version shows the signature."))
                return redirect(reverse("signatures:visit-sign", args=[self.visit.pk]))
        return self.render_to_response(self.get_context_data(form=form), status=400 if form.errors else 200)


class QueueView(PermissionRequiredMixin, TemplateView):
    """Completed visits waiting for a signature at the investigator's sites; sign one or several."""

    permission_required = "signatures.sign_visit"
    template_name = "signatures/queue.html"

    def queue(self) -> list[Visit]:
        user = self.request.user
        # Signatures of visits whose records changed become void before the list is drawn.
        services.signatures_verify_changed(Visit.objects.visible_to(user))
        return list(services.visits_to_sign(user))

    def form(self, visits: list[Visit], data=None) -> QueueSignForm:
        return QueueSignForm(
            data,
            code_required=services.second_factor_due(self.request.session),
            visit_choices=[(v.pk, str(v)) for v in visits],
        )

    def get_context_data(self, **kwargs):
        visits = kwargs.pop("visits", None) or self.queue()
        kwargs.setdefault("form", self.form(visits))
        return super().get_context_data(visits=visits, **kwargs)

    def post(self, request, *args, **kwargs):
        visits = self.queue()
        form = self.form(visits, request.POST)
        if form.is_valid():
            chosen = [v for v in visits if v.pk in set(form.cleaned_data["visits"])]
            try:
                signed = services.visits_sign(
                    actor=request.user,
                    visits=chosen,
                    meaning=form.cleaned_data["meaning"],
                    password=form.cleaned_data["password"],
                    otp_token=form.cleaned_data.get("otp_token", ""),
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(
                    request,
                    ngettext("%(n)d visit signed.", "%(n)d visits signed.", len(signed)) % {"n": len(signed)},
                )
                return redirect("signatures:queue")
        return self.render_to_response(self.get_context_data(form=form, visits=visits), status=400)


urlpatterns = [
    path("signatures/queue/", QueueView.as_view(), name="queue"),
    path("signatures/visits/<int:pk>/", VisitSignView.as_view(), name="visit-sign"),
]
