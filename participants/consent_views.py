"""Consent document versions: the list with re-consent counts, adding a version, the PDF download.

The study team adds a newly approved version themselves (DOMAIN.md s.7 #9: no administrator
needed); from its effective date everyone on study who signed an older version of the same
language is flagged for re-consent by `Participant.objects.needing_reconsent`, with no further step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse_lazy
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views import View
from django.views.decorators.http import require_safe
from django.views.generic import FormView, TemplateView

from participants import services
from participants.consent_forms import ConsentDocumentForm
from participants.models import ConsentDocument, Participant, Screening

logger = logging.getLogger(__name__)

IN_FORCE, UPCOMING, RETIRED = "in_force", "upcoming", "retired"
STATUS_LABELS = {
    IN_FORCE: gettext_lazy("In force today"),
    UPCOMING: gettext_lazy("Upcoming"),
    RETIRED: gettext_lazy("Retired"),
}


@dataclass(frozen=True)
class ConsentVersionRow:
    document: ConsentDocument
    status: str
    signed: int  # people (screenings) the user may see who signed this version
    reconsent_due: int | None  # on the version in force: on-study participants still on an older one

    @property
    def status_label(self) -> str:
        return str(STATUS_LABELS[self.status])


@dataclass(frozen=True)
class LanguageGroup:
    code: str
    label: str
    rows: list[ConsentVersionRow]


def _screenings_in_scope(request):
    screenings = Screening.objects.visible_to(request.user)
    return screenings.filter(site=request.site) if request.site is not None else screenings


def _participants_in_scope(request):
    participants = Participant.objects.visible_to(request.user)
    return participants.filter(site=request.site) if request.site is not None else participants


def reconsent_due_by_language(request, *, on: dt.date) -> dict[str, int]:
    """On-study participants in the user's scope whose latest consent is not the version in force."""
    rows = (
        _participants_in_scope(request)
        .needing_reconsent(on=on)
        .order_by()
        .values("preferred_language")
        .annotate(n=Count("id"))
    )
    return {row["preferred_language"]: row["n"] for row in rows}


def _status(document: ConsentDocument, current_ids: set[int], today: dt.date) -> str:
    if document.pk in current_ids:
        return IN_FORCE
    if document.effective_from > today:
        return UPCOMING
    return RETIRED  # past its end date, or superseded by a later version


def consent_versions(request, *, today: dt.date) -> list[LanguageGroup]:
    """Every version by language, newest first, with its status and counts (three queries)."""
    documents = list(
        ConsentDocument.objects.visible_to(request.user)
        .annotate(
            signed=Count(
                "records__screening",
                filter=Q(records__screening__in=_screenings_in_scope(request)),
                distinct=True,
            )
        )
        .order_by("language", "-effective_from", "-id")
    )
    # The same rule as ConsentDocument.objects.current(): the latest version already effective.
    current_ids: set[int] = set()
    seen_languages: set[str] = set()
    for document in documents:
        effective = document.effective_from <= today and (
            document.effective_until is None or document.effective_until >= today
        )
        if effective and document.language not in seen_languages:
            seen_languages.add(document.language)
            current_ids.add(document.pk)
    due = reconsent_due_by_language(request, on=today)
    labels = dict(settings.LANGUAGES)
    groups: dict[str, LanguageGroup] = {}
    for document in documents:
        status = _status(document, current_ids, today)
        group = groups.setdefault(
            document.language,
            LanguageGroup(document.language, str(labels.get(document.language, document.language)), []),
        )
        group.rows.append(
            ConsentVersionRow(
                document=document,
                status=status,
                signed=document.signed,
                reconsent_due=due.get(document.language, 0) if status == IN_FORCE else None,
            )
        )
    return list(groups.values())


class ConsentDocumentListView(PermissionRequiredMixin, TemplateView):
    permission_required = "participants.view_consentdocument"
    template_name = "participants/consent_document_list.html"

    def get_context_data(self, **kwargs):
        today = timezone.localdate()
        languages = consent_versions(self.request, today=today)
        reconsent_total = sum(row.reconsent_due or 0 for group in languages for row in group.rows)
        return super().get_context_data(
            today=today,
            languages=languages,
            reconsent_total=reconsent_total,
            scope=self.request.site,
            can_manage=self.request.user.has_perm("participants.manage_consent_documents"),
            **kwargs,
        )


def _add_service_errors(form, exc: ValidationError) -> None:
    """Show the service's refusal next to the field it names, or above the form."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


class ConsentDocumentCreateView(PermissionRequiredMixin, FormView):
    permission_required = "participants.manage_consent_documents"
    template_name = "participants/consent_document_form.html"
    form_class = ConsentDocumentForm
    extra_context = {"cancel_url": reverse_lazy("participants:consent-document-list")}

    def form_valid(self, form):
        try:
            document = services.consent_document_add(actor=self.request.user, **form.cleaned_data)
        except ValidationError as exc:
            _add_service_errors(form, exc)
            return self.form_invalid(form)
        today = timezone.localdate()
        if document.effective_from > today:
            messages.success(
                self.request,
                _(
                    "Version %(version)s added. It takes effect on %(date)s; from then everyone who "
                    "signed an earlier version is flagged for re-consent."
                )
                % {"version": document.version, "date": document.effective_from.isoformat()},
            )
        else:
            due = reconsent_due_by_language(self.request, on=today).get(document.language, 0)
            messages.success(
                self.request,
                ngettext(
                    "Version %(version)s added and in force. %(count)s participant on study must re-consent.",
                    "Version %(version)s added and in force. %(count)s participants on study must re-consent.",
                    due,
                )
                % {"version": document.version, "count": due},
            )
        return redirect("participants:consent-document-list")


def _sha256_of(handle) -> str:
    digest = hashlib.sha256()
    for chunk in handle.chunks():
        digest.update(chunk)
    handle.seek(0)
    return digest.hexdigest()


@method_decorator(require_safe, name="dispatch")  # GET and HEAD only, 405 before anything else
class ConsentDocumentDownloadView(PermissionRequiredMixin, View):
    """The approved PDF, from storage, only if it is still the file that was approved: its SHA-256
    must match the one recorded at upload, or it is not served (21 CFR 11.10(a), (c))."""

    permission_required = "participants.view_consentdocument"

    def get(self, request, pk: int):
        document = get_object_or_404(ConsentDocument.objects.visible_to(request.user), pk=pk)
        try:
            handle = document.document.storage.open(document.document.name, "rb")
        except (OSError, ValueError):  # missing, unreadable, or no file name recorded
            logger.exception(
                "Consent document %s: file %r cannot be read", document.pk, document.document.name
            )
            return self._unavailable(
                request,
                document,
                _("The file of this version is missing from storage. Tell the data manager."),
                status=404,
            )
        if _sha256_of(handle) != document.sha256:
            handle.close()
            logger.error("Consent document %s: stored file no longer matches its SHA-256", document.pk)
            return self._unavailable(
                request,
                document,
                _(
                    "The stored file of this version has changed since it was uploaded (its SHA-256 no "
                    "longer matches), so it is not served. Tell the data manager; the approved PDF must "
                    "be restored from the ethics submission."
                ),
                status=409,
            )
        response = FileResponse(
            handle,
            as_attachment=True,
            filename=f"consent-v{document.version}-{document.language}.pdf",
            content_type="application/pdf",
        )
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response

    def _unavailable(self, request, document, message: str, *, status: int):
        return render(
            request,
            "participants/consent_document_unavailable.html",
            {"document": document, "message": message},
            status=status,
        )


urlpatterns = [
    path("consent-documents/", ConsentDocumentListView.as_view(), name="consent-document-list"),
    path("consent-documents/new/", ConsentDocumentCreateView.as_view(), name="consent-document-create"),
    path(
        "consent-documents/<int:pk>/pdf/",
        ConsentDocumentDownloadView.as_view(),
        name="consent-document-download",
    ),
]
