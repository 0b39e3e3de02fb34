"""Screening pages: the screening list, a new screening, the eligibility checklist with live
feedback, the investigator's confirmation queue, consent, enrolment, and participants.

Views are thin: a form validates, one service writes, the view redirects. A service's refusal
(`ValidationError`) goes back on the form, so what the user typed is kept. Records come through
`visible_to(request.user)`, so another site's record is a 404; a role without the permission gets
a 403. Names, dates of birth, record numbers and e-mail addresses reach the templates only through
`identity_for` / `can_see_identifying`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from types import SimpleNamespace

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.forms.models import model_to_dict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import FormView, TemplateView

from participants import services
from participants.forms import (
    ConsentForm,
    ConsentWithdrawalForm,
    DeclineForm,
    DeclineUndoForm,
    EligibilityChangeForm,
    EligibilityForm,
    EndOfStudyForm,
    EnrolmentForm,
    ScreeningChangeForm,
    ScreeningForm,
    has_saved_answers,
    screening_initial,
)
from participants.identifying import can_see_identifying, identity_for
from participants.models import (
    ConsentDocument,
    ConsentRecord,
    ConsentWithdrawal,
    EligibilityAssessment,
    EligibilityStatus,
    NonChildbearingReason,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
    Sex,
)
from trial.locks import ReadOnlyWhenLockedMixin, lock_in_force
from trial.models import Site
from trial.protocol import PROTOCOL, EligibilityResult, Outcome
from trial.sites import sites_for

PAGE_SIZE = 25


def site_today(site: Site) -> dt.date:
    """Today's date where the site is (dates people mean as dates are the site's)."""
    return timezone.localdate(timezone=site.zone)


def add_service_error(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's refusal on the form: on the field it names when the form has that field,
    otherwise at the top of the form."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- Status words and badges (text, never colour alone) ---------------------------------------

OUTCOME_BADGES = {
    ScreeningOutcome.IN_SCREENING: "text-bg-secondary",
    ScreeningOutcome.SCREEN_FAILURE: "text-bg-danger",
    ScreeningOutcome.ELIGIBLE: "text-bg-info",
    ScreeningOutcome.DECLINED: "text-bg-warning",
    ScreeningOutcome.ENROLLED: "text-bg-success",
}
ELIGIBILITY_BADGES = {
    EligibilityStatus.INCOMPLETE: "text-bg-secondary",
    EligibilityStatus.ELIGIBLE: "text-bg-success",
    EligibilityStatus.NOT_ELIGIBLE: "text-bg-danger",
}
PARTICIPANT_BADGES = {
    ParticipantStatus.ON_STUDY: "text-bg-success",
    ParticipantStatus.COMPLETED: "text-bg-primary",
    ParticipantStatus.WITHDRAWN: "text-bg-warning",
}


@dataclass(frozen=True)
class Badge:
    label: str
    css: str


@dataclass(frozen=True)
class CriterionRow:
    """One criterion's result in words, as a page may show it to the current user."""

    code: str
    kind: str
    text: str
    outcome: str  # met / not_met / unanswered
    outcome_label: str
    explanation: str
    css: str


_OUTCOME_WORDS = {
    ("inclusion", Outcome.MET): gettext_lazy("Met"),
    ("inclusion", Outcome.NOT_MET): gettext_lazy("Not met"),
    ("exclusion", Outcome.MET): gettext_lazy("Met: not excluded"),
    ("exclusion", Outcome.NOT_MET): gettext_lazy("Not met: excluded"),
}
_OUTCOME_CSS = {Outcome.MET: "text-bg-success", Outcome.NOT_MET: "text-bg-danger"}


def criterion_rows(result: EligibilityResult, *, show_identifying: bool) -> list[CriterionRow]:
    rows = []
    for item in result.results:
        criterion, finding = item.criterion, item.finding
        explanation = finding.explanation
        # The age finding names the 18th birthday, which gives away the date of birth.
        if explanation and not show_identifying and set(criterion.fields) & set(Screening.IDENTIFYING_FIELDS):
            explanation = _("Details hidden: they would reveal the date of birth.")
        rows.append(
            CriterionRow(
                code=criterion.code,
                kind=criterion.kind,
                text=str(criterion.text),
                outcome=str(finding.outcome),
                outcome_label=str(
                    _OUTCOME_WORDS.get((criterion.kind, finding.outcome), gettext_lazy("Not answered"))
                ),
                explanation=explanation,
                css=_OUTCOME_CSS.get(finding.outcome, "text-bg-secondary"),
            )
        )
    return rows


def eligibility_panel_context(result: EligibilityResult, *, user, saved: bool) -> dict:
    """Context of templates/participants/eligibility_panel.html."""
    if result.failing:
        summary = _("Not eligible: %(codes)s not met.") % {"codes": ", ".join(r.code for r in result.failing)}
    elif result.unanswered:
        summary = _("%(count)s of %(total)s criteria not answered yet.") % {
            "count": len(result.unanswered),
            "total": len(result.results),
        }
    else:
        summary = _("Every criterion is met.")
    return {
        "panel_summary": summary,
        "panel_rows": criterion_rows(result, show_identifying=can_see_identifying(user)),
        "panel_status": result.status,
        "panel_badge": Badge(
            str(EligibilityStatus(result.status).label), ELIGIBILITY_BADGES[EligibilityStatus(result.status)]
        ),
        "panel_failing": [r.code for r in result.failing],
        "panel_unanswered": len(result.unanswered),
        "panel_saved": saved,
    }


# --- Shared plumbing --------------------------------------------------------------------------


def screenings_in_scope(request) -> QuerySet[Screening]:
    """The current site's screenings, or all of the user's sites when none is chosen."""
    screenings = Screening.objects.visible_to(request.user)
    return screenings.filter(site=request.site) if request.site is not None else screenings


def with_consent_state(screenings: QuerySet[Screening]) -> QuerySet[Screening]:
    """Annotate each screening with its latest consent's version and whether a withdrawal was
    recorded after it (the same rule as `services.consent_in_force`), in the list's one query."""
    latest = ConsentRecord.objects.filter(screening=OuterRef("pk")).order_by("-consented_at", "-id")
    last_withdrawal = ConsentWithdrawal.objects.filter(screening=OuterRef("pk")).order_by("-recorded_at")
    return screenings.annotate(
        consent_version=Subquery(latest.values("document__version")[:1]),
        consent_captured_at=Subquery(latest.values("signature_captured_at")[:1]),
        last_withdrawal_at=Subquery(last_withdrawal.values("recorded_at")[:1]),
    )


def consent_badge(version: str | None, captured_at, withdrawn_at) -> Badge:
    if version is None:
        return Badge(_("No consent"), "text-bg-secondary")
    if withdrawn_at is not None and withdrawn_at >= captured_at:
        return Badge(_("Consent withdrawn"), "text-bg-warning")
    return Badge(_("Consented (v%(version)s)") % {"version": version}, "text-bg-success")


class ScreeningPageMixin(PermissionRequiredMixin):
    """A page about one screened person of the user's sites. The permission is checked before
    the record is looked up, so a wrong role gets 403 whether or not the record exists."""

    @cached_property
    def screening(self) -> Screening:
        return get_object_or_404(
            Screening.objects.visible_to(self.request.user).select_related(
                "site", "eligibility", "eligibility__confirmed_by", "participant"
            ),
            pk=self.kwargs["pk"],
        )

    @cached_property
    def participant(self) -> Participant | None:
        return getattr(self.screening, "participant", None)

    def lock_scope(self) -> dict:
        return {"screening": self.screening}

    @property
    def today(self) -> dt.date:
        return site_today(self.screening.site)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            screening=self.screening,
            identity=identity_for(self.screening, self.request.user),
            **kwargs,
        )


class ServiceFormView(FormView):
    """A form whose valid input goes to one service; its refusal is shown on the form."""

    def call_service(self, form):  # pragma: no cover - each view defines it
        raise NotImplementedError

    def form_valid(self, form):
        try:
            return self.call_service(form)
        except ValidationError as exc:
            add_service_error(form, exc)
            return self.form_invalid(form)


# --- Screening list, new screening, detail ----------------------------------------------------


class ScreeningFilterForm(forms.Form):
    outcome = forms.ChoiceField(
        label=gettext_lazy("Outcome"),
        required=False,
        choices=[("", gettext_lazy("All outcomes")), *ScreeningOutcome.choices],
    )
    q = forms.CharField(label=gettext_lazy("Search"), required=False, max_length=100)

    def __init__(self, *args, show_names: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["q"].help_text = (
            _("Screening number, study id or name.") if show_names else _("Screening number or study id.")
        )


@dataclass(frozen=True)
class ScreeningRow:
    screening: Screening
    name: str | None
    outcome: Badge
    eligibility: Badge
    confirmed: bool
    consent: Badge
    study_id: str | None


class ScreeningListView(PermissionRequiredMixin, TemplateView):
    permission_required = "participants.view_screening"
    template_name = "participants/screening_list.html"

    def get_context_data(self, **kwargs):
        request = self.request
        show_names = can_see_identifying(request.user)
        filters = ScreeningFilterForm(request.GET, show_names=show_names)
        filters.is_valid()  # an invalid filter is shown with its error and ignored
        screenings = with_consent_state(screenings_in_scope(request).for_log())
        outcome = filters.cleaned_data.get("outcome")
        if outcome:
            screenings = screenings.filter(outcome=outcome)
        for term in (filters.cleaned_data.get("q") or "").split():
            match = Q(screening_number__icontains=term) | Q(participant__study_id__icontains=term)
            if show_names:
                match |= Q(first_name__icontains=term) | Q(last_name__icontains=term)
            screenings = screenings.filter(match)
        page = Paginator(screenings, PAGE_SIZE).get_page(request.GET.get("page"))
        rows = []
        for s in page:
            assessment = s.eligibility
            participant = getattr(s, "participant", None)
            rows.append(
                ScreeningRow(
                    screening=s,
                    name=f"{s.first_name} {s.last_name}" if show_names else None,
                    outcome=Badge(s.get_outcome_display(), OUTCOME_BADGES[s.outcome]),
                    eligibility=Badge(assessment.get_status_display(), ELIGIBILITY_BADGES[assessment.status]),
                    confirmed=assessment.is_confirmed,
                    consent=consent_badge(s.consent_version, s.consent_captured_at, s.last_withdrawal_at),
                    study_id=participant.study_id if participant else None,
                )
            )
        query = request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            filters=filters,
            rows=rows,
            page=page,
            show_names=show_names,
            query=query.urlencode(),
            scope=request.site,
            **kwargs,
        )


class ScreeningCreateView(PermissionRequiredMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.add_screening"
    template_name = "participants/screening_form.html"

    @cached_property
    def sites(self):
        return list(sites_for(self.request.user))

    @property
    def default_site(self) -> Site | None:
        return self.request.site or (self.sites[0] if self.sites else None)

    def get_form(self, form_class=None):
        today = site_today(self.default_site) if self.default_site else timezone.localdate()
        sites = sites_for(self.request.user) if len(self.sites) > 1 else None
        return ScreeningForm(**self.get_form_kwargs(), today=today, sites=sites)

    def get_initial(self):
        initial = {}
        if self.default_site is not None:
            initial["screening_date"] = site_today(self.default_site)
            initial["site"] = self.default_site.pk
        return initial

    def call_service(self, form):
        data = dict(form.cleaned_data)
        site = data.pop("site", None) or self.default_site
        if site is None:
            raise ValidationError(_("You are not a member of any site; ask an administrator."))
        screening = services.screening_create(actor=self.request.user, site=site, **data)
        messages.success(
            self.request,
            _("Screening %(number)s recorded. Now the eligibility checklist.")
            % {"number": screening.screening_number},
        )
        return redirect("participants:eligibility-edit", pk=screening.pk)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=_("New screening"), submit_label=_("Save and continue"), **kwargs
        )


class ScreeningUpdateView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_screening"
    template_name = "participants/screening_form.html"

    def get_form(self, form_class=None):
        return ScreeningChangeForm(**self.get_form_kwargs(), today=self.today)

    def get_initial(self):
        return screening_initial(self.screening)

    def call_service(self, form):
        changes = form.changed_values()
        if not changes:
            messages.info(self.request, _("Nothing changed."))
            return redirect(self.screening)
        services.screening_update(
            actor=self.request.user,
            screening=self.screening,
            data=changes,
            reason=form.cleaned_data["reason"],
        )
        messages.success(self.request, _("Screening record saved."))
        return redirect(self.screening)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=_("Correct screening %(number)s") % {"number": self.screening.screening_number},
            submit_label=_("Save changes"),
            **kwargs,
        )


class ScreeningDetailView(ScreeningPageMixin, TemplateView):
    permission_required = "participants.view_screening"
    template_name = "participants/screening_detail.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        screening = self.screening
        assessment = screening.eligibility
        participant = self.participant
        consents = list(
            screening.consents.select_related("document", "obtained_by").order_by("-consented_at", "-id")
        )
        withdrawals = list(screening.withdrawals.select_related("recorded_by"))
        in_force = services.consent_in_force(screening)
        enrolled = participant is not None
        show_identifying = can_see_identifying(user)
        # Locked data are read-only: no edit buttons (the edit pages would only show the banner).
        unlocked = lock_in_force(screening=screening) is None
        return super().get_context_data(
            assessment=assessment,
            participant=participant,
            consents=consents,
            consent_in_force=in_force,
            withdrawals=withdrawals,
            show_identifying=show_identifying,
            outcome_badge=Badge(screening.get_outcome_display(), OUTCOME_BADGES[screening.outcome]),
            site_zone=screening.site.time_zone,
            can_edit_screening=user.has_perm("participants.change_screening") and not enrolled and unlocked,
            can_edit_checklist=user.has_perm("participants.change_eligibilityassessment")
            and not enrolled
            and unlocked,
            can_confirm=user.has_perm("participants.confirm_eligibility")
            and assessment.status == EligibilityStatus.ELIGIBLE
            and not assessment.is_confirmed,
            can_consent=user.has_perm("participants.add_consentrecord") and unlocked,
            can_enrol=user.has_perm("participants.enroll_participant")
            and unlocked
            and not enrolled
            and screening.outcome == ScreeningOutcome.ELIGIBLE,
            can_decline=user.has_perm("participants.change_screening")
            and unlocked
            and screening.outcome == ScreeningOutcome.ELIGIBLE,
            can_undo_decline=user.has_perm("participants.change_screening")
            and unlocked
            and screening.outcome == ScreeningOutcome.DECLINED,
            **eligibility_panel_context(assessment.assess(), user=user, saved=True),
            **kwargs,
        )


# --- Eligibility checklist ------------------------------------------------------------------


class EligibilityEditView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_eligibilityassessment"
    template_name = "participants/eligibility_form.html"

    @cached_property
    def assessment(self) -> EligibilityAssessment:
        return self.screening.eligibility

    def get(self, request, *args, **kwargs):
        if self.participant is not None:
            return self._enrolled()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        if self.participant is not None:
            return self._enrolled()
        return super().post(request, *args, **kwargs)

    def _enrolled(self):
        messages.info(self.request, _("This person is enrolled; their eligibility can no longer change."))
        return redirect(self.screening)

    def get_form(self, form_class=None):
        form_class = EligibilityChangeForm if has_saved_answers(self.assessment) else EligibilityForm
        return form_class(**self.get_form_kwargs(), screening=self.screening, today=self.today)

    def get_initial(self):
        initial = model_to_dict(self.assessment, fields=EligibilityAssessment.ANSWER_FIELDS)
        # A man is not of child-bearing potential: pre-filled, still shown and changeable.
        if (
            self.screening.sex == Sex.MALE
            and initial["childbearing_potential"] is None
            and not initial["non_childbearing_reason"]
        ):
            initial.update(childbearing_potential=False, non_childbearing_reason=NonChildbearingReason.MALE)
        return initial

    def call_service(self, form):
        answers = form.answers()
        if all(getattr(self.assessment, name) == value for name, value in answers.items()):
            messages.info(self.request, _("Nothing changed."))
            return redirect(self.screening)
        assessment = services.eligibility_record(
            actor=self.request.user,
            screening=self.screening,
            answers=answers,
            reason=form.cleaned_data.get("reason"),
        )
        if assessment.status == EligibilityStatus.NOT_ELIGIBLE:
            messages.warning(
                self.request,
                _("Checklist saved: not eligible (%(codes)s). The person stays in the screening log.")
                % {"codes": ", ".join(assessment.failing_criteria)},
            )
        else:
            messages.success(
                self.request,
                _("Checklist saved: %(status)s.") % {"status": assessment.get_status_display().lower()},
            )
        return redirect(self.screening)

    def get_context_data(self, **kwargs):
        if "form" not in kwargs:
            kwargs["form"] = self.get_form()
        form = kwargs["form"]
        if form.is_bound:
            result, saved = draft_result(self.screening, form), False
        else:
            answers = {name: form.initial.get(name) for name in EligibilityAssessment.ANSWER_FIELDS}
            result = assess_answers(self.screening, answers)
            saved = all(getattr(self.assessment, name) == value for name, value in answers.items())
        return super().get_context_data(
            sections=form.sections(),
            needs_reason="reason" in form.fields,
            **eligibility_panel_context(result, user=self.request.user, saved=saved),
            **kwargs,
        )


def assess_answers(screening: Screening, answers: dict) -> EligibilityResult:
    """The protocol's verdict on answers not saved (nothing is written, no model is touched)."""
    return PROTOCOL.assess(
        SimpleNamespace(
            date_of_birth=screening.date_of_birth, screening_date=screening.screening_date, **answers
        )
    )


def draft_result(screening: Screening, form: EligibilityForm) -> EligibilityResult:
    """The verdict on a submitted form: its valid answers, the invalid ones as unanswered."""
    form.is_valid()
    return assess_answers(screening, form.valid_answers())


class EligibilityPreviewView(ScreeningPageMixin, View):
    """The live eligibility panel: the protocol's verdict on the answers as typed. Saves nothing."""

    permission_required = "participants.change_eligibilityassessment"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        form = EligibilityForm(request.POST, screening=self.screening, today=self.today)
        return render(
            request,
            "participants/eligibility_panel.html",
            eligibility_panel_context(draft_result(self.screening, form), user=request.user, saved=False),
        )


# --- Investigator confirmation ----------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    screening: Screening
    name: str | None


class ConfirmationQueueView(PermissionRequiredMixin, TemplateView):
    permission_required = "participants.confirm_eligibility"
    template_name = "participants/screening_confirmation_queue.html"

    def get_context_data(self, **kwargs):
        show_names = can_see_identifying(self.request.user)
        screenings = (
            screenings_in_scope(self.request)
            .filter(eligibility__status=EligibilityStatus.ELIGIBLE, eligibility__confirmed_at__isnull=True)
            .exclude(outcome__in=[ScreeningOutcome.ENROLLED, ScreeningOutcome.DECLINED])
            .select_related("site", "eligibility")
            .order_by("screening_date", "id")
        )
        page = Paginator(screenings, PAGE_SIZE).get_page(self.request.GET.get("page"))
        rows = [QueueRow(s, f"{s.first_name} {s.last_name}" if show_names else None) for s in page]
        return super().get_context_data(rows=rows, page=page, show_names=show_names, query="", **kwargs)


# --- Consent, enrolment, decline ------------------------------------------------------------


class ConsentCreateView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.add_consentrecord"
    template_name = "participants/consent_form.html"

    @property
    def language(self) -> str:
        return self.participant.preferred_language if self.participant else settings.LANGUAGE_CODE

    def get_form(self, form_class=None):
        return ConsentForm(
            **self.get_form_kwargs(),
            zone=self.screening.site.zone,
            documents=ConsentDocument.objects.effective_on(self.today).order_by(
                "language", "-effective_from"
            ),
        )

    def get_initial(self):
        current = ConsentDocument.objects.current(language=self.language, on=self.today)
        return {
            "document": current.pk if current else None,
            "consented_at": timezone.now().replace(second=0, microsecond=0),
        }

    def call_service(self, form):
        data = form.cleaned_data
        record = services.consent_record(
            actor=self.request.user,
            screening=self.screening,
            document=data["document"],
            consented_at=data["consented_at"],
            participant_signature=data["participant_signature"],
            attestation=data["attestation"],
            copy_given=data["copy_given"],
            representative_name=data["representative_name"],
            representative_relationship=data["representative_relationship"],
            witness_name=data["witness_name"],
        )
        messages.success(
            self.request, _("Consent to version %(version)s recorded.") % {"version": record.document.version}
        )
        if self.participant is not None:
            return redirect(self.participant)
        assessment = self.screening.eligibility
        if self.request.user.has_perm("participants.enroll_participant") and assessment.is_confirmed:
            return redirect("participants:participant-enroll", pk=self.screening.pk)
        return redirect(self.screening)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(
            is_reconsent=self.participant is not None or self.screening.consents.exists(),
            site_zone=self.screening.site.time_zone,
            **kwargs,
        )
        context["no_document"] = not context["form"].fields["document"].queryset.exists()
        return context


@dataclass(frozen=True)
class Readiness:
    label: str
    ok: bool
    detail: str


class EnrolView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.enroll_participant"
    template_name = "participants/participant_enrol.html"

    def get(self, request, *args, **kwargs):
        if self.participant is not None:
            messages.info(request, _("Already enrolled as %(id)s.") % {"id": self.participant.study_id})
            return redirect(self.participant)
        return super().get(request, *args, **kwargs)

    def get_form(self, form_class=None):
        return EnrolmentForm(**self.get_form_kwargs(), today=self.today)

    def get_initial(self):
        return {
            "enrolled_on": self.today,
            "time_zone": self.screening.site.time_zone,
            "preferred_language": settings.LANGUAGE_CODE,
        }

    def call_service(self, form):
        participant = services.participant_enroll(
            actor=self.request.user, screening=self.screening, **form.cleaned_data
        )
        messages.success(self.request, _("Enrolled. Study id: %(id)s") % {"id": participant.study_id})
        return redirect(participant)

    def get_context_data(self, **kwargs):
        assessment = self.screening.eligibility
        consent = services.consent_in_force(self.screening)
        readiness = [
            Readiness(
                _("Eligible"),
                assessment.status == EligibilityStatus.ELIGIBLE,
                assessment.get_status_display(),
            ),
            Readiness(
                _("Eligibility confirmed by an investigator"),
                assessment.is_confirmed,
                (assessment.confirmed_by.full_name if assessment.confirmed_by else _("Not yet confirmed")),
            ),
            Readiness(
                _("Consent in force"),
                consent is not None,
                _("Version %(version)s") % {"version": consent.document.version}
                if consent
                else _("No consent"),
            ),
        ]
        return super().get_context_data(readiness=readiness, **kwargs)


class DeclineView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_screening"
    template_name = "participants/screening_decline.html"
    form_class = DeclineForm

    def call_service(self, form):
        services.screening_decline(
            actor=self.request.user, screening=self.screening, note=form.cleaned_data["note"]
        )
        messages.success(self.request, _("Recorded as eligible but not enrolled."))
        return redirect(self.screening)


class DeclineUndoView(ScreeningPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_screening"
    template_name = "participants/screening_decline_undo.html"
    form_class = DeclineUndoForm

    def call_service(self, form):
        services.screening_decline_undo(
            actor=self.request.user, screening=self.screening, reason=form.cleaned_data["reason"]
        )
        messages.success(self.request, _("Eligible for enrolment again."))
        return redirect(self.screening)


# --- Participants -----------------------------------------------------------------------------


def reconsent_due(participants: list[Participant]) -> set[int]:
    """Which of these participants must re-consent, each judged on today's date at their site.
    One query per distinct local date among their sites (one or two), not per participant."""
    by_day: dict[dt.date, list[int]] = {}
    for p in participants:
        by_day.setdefault(site_today(p.site), []).append(p.pk)
    due: set[int] = set()
    for day, ids in by_day.items():
        due.update(
            Participant.objects.filter(pk__in=ids).needing_reconsent(on=day).values_list("pk", flat=True)
        )
    return due


class ParticipantFilterForm(forms.Form):
    status = forms.ChoiceField(
        label=gettext_lazy("Status"),
        required=False,
        choices=[("", gettext_lazy("All statuses")), *ParticipantStatus.choices],
    )
    q = forms.CharField(
        label=gettext_lazy("Study id"),
        required=False,
        max_length=30,
        help_text=gettext_lazy("Whole or part of a study id."),
    )


@dataclass(frozen=True)
class ParticipantRow:
    participant: Participant
    status: Badge
    reconsent_due: bool


class ParticipantListView(PermissionRequiredMixin, TemplateView):
    permission_required = "participants.view_participant"
    template_name = "participants/participant_list.html"

    def get_context_data(self, **kwargs):
        request = self.request
        filters = ParticipantFilterForm(request.GET)
        filters.is_valid()
        participants = (
            Participant.objects.visible_to(request.user).select_related("site").with_consent_version()
        )
        if request.site is not None:
            participants = participants.filter(site=request.site)
        if status := filters.cleaned_data.get("status"):
            participants = participants.filter(status=status)
        if term := (filters.cleaned_data.get("q") or "").strip():
            participants = participants.filter(study_id__icontains=term)
        page = Paginator(participants, PAGE_SIZE).get_page(request.GET.get("page"))
        on_page = list(page)
        due = reconsent_due(on_page)
        rows = [
            ParticipantRow(p, Badge(p.get_status_display(), PARTICIPANT_BADGES[p.status]), p.pk in due)
            for p in on_page
        ]
        query = request.GET.copy()
        query.pop("page", None)
        return super().get_context_data(
            filters=filters, rows=rows, page=page, query=query.urlencode(), scope=request.site, **kwargs
        )


class ParticipantPageMixin(PermissionRequiredMixin):
    @cached_property
    def participant(self) -> Participant:
        return get_object_or_404(
            Participant.objects.visible_to(self.request.user).select_related(
                "site", "screening", "enrolled_by"
            ),
            pk=self.kwargs["pk"],
        )

    def lock_scope(self) -> dict:
        return {"participant": self.participant}

    @property
    def today(self) -> dt.date:
        return site_today(self.participant.site)

    def get_context_data(self, **kwargs):
        return super().get_context_data(participant=self.participant, **kwargs)


class ParticipantDetailView(ParticipantPageMixin, TemplateView):
    permission_required = "participants.view_participant"
    template_name = "participants/participant_detail.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        participant = self.participant
        screening = participant.screening
        on_study = participant.status == ParticipantStatus.ON_STUDY
        consent = services.consent_in_force(screening)
        show_identifying = can_see_identifying(user)
        unlocked = lock_in_force(participant=participant) is None
        return super().get_context_data(
            screening=screening,
            consent=consent,
            withdrawals=list(screening.withdrawals.select_related("recorded_by")),
            reconsent_due=participant.pk in reconsent_due([participant]),
            status_badge=Badge(participant.get_status_display(), PARTICIPANT_BADGES[participant.status]),
            email=(participant.email or "—") if show_identifying else _("hidden"),
            show_identifying=show_identifying,
            can_reconsent=user.has_perm("participants.add_consentrecord") and on_study and unlocked,
            can_withdraw=user.has_perm("participants.add_consentwithdrawal") and unlocked,
            can_end=user.has_perm("participants.change_participant") and on_study and unlocked,
            **kwargs,
        )


class ConsentWithdrawView(ParticipantPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.add_consentwithdrawal"
    template_name = "participants/participant_withdraw.html"

    def get_form(self, form_class=None):
        return ConsentWithdrawalForm(**self.get_form_kwargs(), today=self.today)

    def get_initial(self):
        return {"withdrawn_on": self.today}

    def call_service(self, form):
        withdrawal = services.consent_withdraw(
            actor=self.request.user, screening=self.participant.screening, **form.cleaned_data
        )
        messages.success(
            self.request,
            _("Withdrawal of consent recorded: %(scope)s.") % {"scope": withdrawal.get_scope_display()},
        )
        return redirect(self.participant)


class ParticipantEndView(ParticipantPageMixin, ReadOnlyWhenLockedMixin, ServiceFormView):
    permission_required = "participants.change_participant"
    template_name = "participants/participant_end.html"

    def get(self, request, *args, **kwargs):
        if self.participant.status != ParticipantStatus.ON_STUDY:
            messages.info(request, _("This participant's time on study has already ended."))
            return redirect(self.participant)
        return super().get(request, *args, **kwargs)

    def get_form(self, form_class=None):
        return EndOfStudyForm(**self.get_form_kwargs(), today=self.today)

    def get_initial(self):
        return {"ended_on": self.today}

    def call_service(self, form):
        data = form.cleaned_data
        participant = services.participant_end(
            actor=self.request.user,
            participant=self.participant,
            ended_on=data["ended_on"],
            end_reason=data["end_reason"],
            detail=data["end_reason_detail"],
        )
        messages.success(
            self.request,
            _("End of study recorded: %(reason)s.") % {"reason": participant.get_end_reason_display()},
        )
        return redirect(participant)


urlpatterns = [
    path("screening/", ScreeningListView.as_view(), name="screening-list"),
    path("screening/new/", ScreeningCreateView.as_view(), name="screening-create"),
    path("screening/to-confirm/", ConfirmationQueueView.as_view(), name="confirmation-queue"),
    path("screening/<int:pk>/", ScreeningDetailView.as_view(), name="screening-detail"),
    path("screening/<int:pk>/edit/", ScreeningUpdateView.as_view(), name="screening-edit"),
    path("screening/<int:pk>/eligibility/", EligibilityEditView.as_view(), name="eligibility-edit"),
    path(
        "screening/<int:pk>/eligibility/preview/",
        EligibilityPreviewView.as_view(),
        name="eligibility-preview",
    ),
    path("screening/<int:pk>/consent/", ConsentCreateView.as_view(), name="consent-create"),
    path("screening/<int:pk>/enrol/", EnrolView.as_view(), name="participant-enroll"),
    path("screening/<int:pk>/decline/", DeclineView.as_view(), name="screening-decline"),
    path("screening/<int:pk>/decline/undo/", DeclineUndoView.as_view(), name="screening-decline-undo"),
    path("participants/", ParticipantListView.as_view(), name="participant-list"),
    path("participants/<int:pk>/", ParticipantDetailView.as_view(), name="participant-detail"),
    path(
        "participants/<int:pk>/withdraw-consent/",
        ConsentWithdrawView.as_view(),
        name="consent-withdraw",
    ),
    path("participants/<int:pk>/end/", ParticipantEndView.as_view(), name="participant-end"),
]
