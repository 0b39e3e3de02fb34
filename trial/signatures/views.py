"""Review-and-sign pages (a visit; a screening's eligibility; a participant's end of study: the
records, the signatures with their status, the sign form) and the investigator's queue of
everything waiting for a signature."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model
from django.shortcuts import get_object_or_404, redirect
from django.urls import path
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.generic import TemplateView

from participants.views import eligibility_panel_context
from trial.pagination import PAGE_SIZE, ListPage, list_page
from trial.reports import services as report_services
from trial.reports.content import sha256_of
from trial.reports.data import report_data
from trial.signatures import services
from trial.signatures.forms import QueueSignForm, SignForm
from trial.signatures.models import Signature, SignatureKind, SignatureStatus, sign_url
from trial.signatures.subjects import SUBJECTS


class SubjectSignView(PermissionRequiredMixin, TemplateView):
    """Review one subject's records and its signatures; investigators sign it here."""

    kind: str
    related: tuple[str, ...] = ()
    signed_message = _("Signed.")

    @cached_property
    def subject(self) -> Model:
        model = SUBJECTS[self.kind].model
        return get_object_or_404(
            model.objects.visible_to(self.request.user).select_related(*self.related), pk=self.kwargs["pk"]
        )

    def can_sign(self) -> bool:
        return (
            self.request.user.has_perm("signatures.sign_visit")
            and SUBJECTS[self.kind].refusal(self.subject) is None
        )

    def form(self, data=None) -> SignForm:
        return SignForm(data, code_required=services.second_factor_due(self.request.session))

    def subject_context(self) -> dict:
        return {}

    def get_context_data(self, **kwargs):
        subject = self.subject
        # Read-time check: a signature whose records changed is void before anyone sees it as valid.
        services.signatures_void_if_changed(subject)
        signatures = list(Signature.objects.for_subject(subject).order_by("-signed_at"))
        kwargs.setdefault("form", self.form() if self.can_sign() else None)
        refusal = SUBJECTS[self.kind].refusal(subject)
        return super().get_context_data(
            subject=subject,
            signable=refusal is None,
            unsignable_reason=refusal,
            signatures=signatures,
            valid_signature=next((s for s in signatures if s.status == SignatureStatus.VALID), None),
            records_hash=sha256_of(SUBJECTS[self.kind].records(subject)),
            site_zone=SUBJECTS[self.kind].site(subject).time_zone,
            **self.subject_context(),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not self.can_sign():
            raise PermissionDenied
        form = self.form(request.POST)
        if form.is_valid():
            try:
                services.subjects_sign(
                    actor=request.user,
                    subjects=[self.subject],
                    meaning=form.cleaned_data["meaning"],
                    password=form.cleaned_data["password"],
                    otp_token=form.cleaned_data.get("otp_token", ""),
                    request=request,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, self.signed_message)
                return redirect(sign_url(self.subject))
        return self.render_to_response(self.get_context_data(form=form), status=400 if form.errors else 200)


class VisitSignView(SubjectSignView):
    """A completed visit: its records as the report shows them, the report versions with their
    hashes, the signatures with their status, and (for investigators) the sign form."""

    permission_required = "reports.view_visitreport"
    template_name = "signatures/visit_sign.html"
    kind = SignatureKind.VISIT
    related = ("participant__site",)
    signed_message = _("Visit signed. The report's new version shows the signature.")

    def subject_context(self) -> dict:
        visit = self.subject
        reports = report_services.report_versions(visit)
        latest = reports[0] if reports else None
        data = report_data(visit, signatures=report_services.signature_block(visit))
        return {
            "visit": visit,
            "participant": visit.participant,
            "data": data,
            "reports": reports,
            "report_stale": latest is None or latest.content_hash != sha256_of(data),
            "can_generate": self.request.user.has_perm("reports.add_visitreport")
            and visit.status == "completed",
        }


class EligibilitySignView(SubjectSignView):
    """A screening's eligibility checklist. Signing it is the investigator's confirmation: one act,
    password again, recorded as an e-signature bound to the answers."""

    permission_required = "participants.view_screening"
    template_name = "signatures/eligibility_sign.html"
    kind = SignatureKind.ELIGIBILITY
    related = ("site", "eligibility", "eligibility__confirmed_by")
    signed_message = _("Eligibility confirmed and signed.")

    def can_sign(self) -> bool:
        return super().can_sign() and self.request.user.has_perm("participants.confirm_eligibility")

    def subject_context(self) -> dict:
        screening = self.subject
        return {
            "screening": screening,
            "assessment": screening.eligibility,
            **eligibility_panel_context(screening.eligibility.assess(), user=self.request.user, saved=True),
        }


class EndOfStudySignView(SubjectSignView):
    """A participant's end of study: status, date, reason, withdrawals of consent."""

    permission_required = "participants.view_participant"
    template_name = "signatures/end_of_study_sign.html"
    kind = SignatureKind.END_OF_STUDY
    related = ("site", "screening")
    signed_message = _("End of study signed.")

    def subject_context(self) -> dict:
        participant = self.subject
        return {
            "participant": participant,
            "withdrawals": list(participant.screening.withdrawals.order_by("withdrawn_on", "pk")),
        }


QUEUE_PAGE_SIZE = PAGE_SIZE  # items of each kind per page

# Each kind of waiting item: the QueueSignForm field (and template variable) and its anchor.
QUEUE_KINDS = (
    ("visits", services.visits_to_sign, "queue-visits"),
    ("screenings", services.eligibility_to_sign, "queue-eligibility"),
    ("participants", services.ends_of_study_to_sign, "queue-end-of-study"),
)


class QueueView(PermissionRequiredMixin, TemplateView):
    """Everything waiting for a signature at the investigator's sites - completed visits, eligible
    checklists, ends of study - with the ones whose signature was voided by an edit marked; sign
    one or several after review. Each kind a page at a time (`?visits_page=`, `?screenings_page=`,
    `?participants_page=`); the sign form covers the pages shown, and its POST (to the same
    address) can sign only items of those pages that still wait. Queries: a count and a page of
    each kind, however many wait."""

    permission_required = "signatures.sign_visit"
    template_name = "signatures/queue.html"

    def queue(self) -> dict[str, ListPage]:
        user = self.request.user
        # Signatures whose records changed become void before the lists are drawn.
        services.signatures_verify_changed_for(user)
        return {
            name: list_page(
                waiting(user),
                query=self.request.GET,
                param=f"{name}_page",
                per_page=QUEUE_PAGE_SIZE,
                fragment=fragment,
            )
            for name, waiting, fragment in QUEUE_KINDS
        }

    def form(self, queue: dict[str, ListPage], data=None) -> QueueSignForm:
        return QueueSignForm(
            data,
            code_required=services.second_factor_due(self.request.session),
            choices={name: [(s.pk, str(s)) for s in page] for name, page in queue.items()},
        )

    def get_context_data(self, **kwargs):
        queue = kwargs.pop("queue", None) or self.queue()
        kwargs.setdefault("form", self.form(queue))
        return super().get_context_data(**queue, waiting=sum(page.count for page in queue.values()), **kwargs)

    def post(self, request, *args, **kwargs):
        queue = self.queue()
        form = self.form(queue, request.POST)
        if form.is_valid():
            # Only items of the pages shown (the form's choices), each checked again by the service.
            chosen = [
                subject
                for name, page in queue.items()
                for subject in page
                if subject.pk in set(form.cleaned_data[name])
            ]
            try:
                signed = services.subjects_sign(
                    actor=request.user,
                    subjects=chosen,
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
                    ngettext("%(n)d item signed.", "%(n)d items signed.", len(signed)) % {"n": len(signed)},
                )
                # Back to the same pages (a page emptied by the signing shows the last one left).
                return redirect(request.get_full_path())
        return self.render_to_response(self.get_context_data(form=form, queue=queue), status=400)


urlpatterns = [
    path("signatures/queue/", QueueView.as_view(), name="queue"),
    path("signatures/visits/<int:pk>/", VisitSignView.as_view(), name="visit-sign"),
    path("signatures/eligibility/<int:pk>/", EligibilitySignView.as_view(), name="eligibility-sign"),
    path("signatures/end-of-study/<int:pk>/", EndOfStudySignView.as_view(), name="end-of-study-sign"),
]
