"""The patient's questionnaire, opened on a phone from the e-mailed link (issue 5, DOMAIN.md s.5).

    /q/<token>/          the start page; once answers are saved, straight to the first unanswered page
    /q/<token>/<n>/      page n: one section of the instrument; Next and Back save the page
    /q/<token>/review/   every answer with "change" links and the required ones missing; Submit
    /q/<token>/thanks/   the thank-you page, for the browser that has just submitted

Patients are not users: the link's random token is the only credential, and the URL holds nothing
else. Every page is sent with `Referrer-Policy: no-referrer` (the token must not leak to another
site), `Cache-Control: no-store` (a shared phone or proxy keeps no copy) and `X-Robots-Tag: noindex`.
A link that cannot be used gets a friendly page with the site's contact - except an unknown link,
whose page is the same for every token and names no participant or site. Unknown links are counted
per client address (settings.QUESTIONNAIRE_BAD_TOKEN_*): slowed past half the limit, then blocked.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.messages.storage.session import SessionStorage
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone, translation
from django.utils.decorators import decorator_from_middleware
from django.utils.log import log_response
from django.utils.translation import gettext as _
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from pro_measures import invitations
from pro_measures.instruments import Instrument, Section
from pro_measures.invitations import LinkProblem
from pro_measures.models import Invitation, InvitationStatus, Response
from pro_measures.patient_forms import SectionForm, answer_text
from trial.network import client_network

PATIENT_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}
# Friendly pages per LinkProblem kind; a used, expired or revoked link is gone for good (410).
PROBLEM_STATUS = {"used": 410, "expired": 410, "revoked": 410, "not_yet": 200}
SUBMITTED_SESSION_KEY = "pro_measures_submitted"  # invitation ids this browser has just submitted


def patient_message(error: ValidationError) -> str:
    """What a patient reads when a save is refused. Data locked by data management: no staff
    names or reasons, just that the answers cannot change now (the study team knows why)."""
    if getattr(error, "code", None) == "locked":
        return _(
            "Your answers cannot be changed at the moment. What you saved before is kept; "
            "please contact the study team."
        )
    return error.messages[0]


def _base_context(site=None) -> dict[str, Any]:
    return {"study_name": settings.STUDY_NAME, "site": site}


# --- Unknown links: counted per client address ---------------------------------------------------


def _bad_links_key(request: HttpRequest) -> str:
    digest = hashlib.sha256(client_network(request).encode()).hexdigest()[:32]
    return f"pro_measures:bad-links:{digest}"


def _blocked(request: HttpRequest) -> bool:
    return (cache.get(_bad_links_key(request)) or 0) >= settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT


def _count_unknown_link(request: HttpRequest) -> None:
    """One more unknown link from this address, in a window that starts at the first one; past half
    the limit the answer comes late, which makes guessing slower still (it is already hopeless:
    tokens have 256 bits)."""
    key = _bad_links_key(request)
    window = int(settings.QUESTIONNAIRE_BAD_TOKEN_WINDOW.total_seconds())
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # the window ended between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    if count > settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT // 2:
        time.sleep(settings.QUESTIONNAIRE_BAD_TOKEN_DELAY.total_seconds())


def _too_many_attempts(request: HttpRequest) -> HttpResponse:
    window = settings.QUESTIONNAIRE_BAD_TOKEN_WINDOW
    context = {**_base_context(), "minutes": max(1, round(window.total_seconds() / 60))}
    response = render(request, "pro_measures/patient/too_many_attempts.html", context, status=429)
    response["Retry-After"] = str(int(window.total_seconds()))
    return response


# --- Links that cannot be used -------------------------------------------------------------------


def _unknown_link(request: HttpRequest) -> HttpResponse:
    return render(request, "pro_measures/patient/unknown_link.html", _base_context(), status=404)


def _link_problem(request: HttpRequest, problem: LinkProblem) -> HttpResponse:
    invitation = problem.invitation
    participant = invitation.participant
    with translation.override(participant.preferred_language), timezone.override(participant.zone):
        context = {
            **_base_context(participant.site),
            "kind": problem.kind,
            "opens_at": invitation.opens_at,
            "valid_until": invitation.valid_until,
        }
        return render(
            request, "pro_measures/patient/link_problem.html", context, status=PROBLEM_STATUS[problem.kind]
        )


class _PatientCsrfMiddleware(CsrfViewMiddleware):
    """Django's CSRF check, fitted to `Referrer-Policy: no-referrer`, and answered with a
    patient's page when it fails (a form left open for days, cookies cleared): the staff page would
    offer the staff sign-in.

    Under no-referrer a browser posts a form with `Origin: null` and no Referer (Fetch standard,
    "append a request Origin header"), which Django's check refuses. Those two are accepted here;
    a foreign origin still is not. The CSRF cookie and form token are still required, and a forged
    post would need the link's secret token in its URL besides.
    """

    def _origin_verified(self, request):
        return request.META["HTTP_ORIGIN"] == "null" or super()._origin_verified(request)

    def _check_referer(self, request):
        if "HTTP_REFERER" in request.META:
            super()._check_referer(request)

    def _reject(self, request, reason):
        token = request.resolver_match.kwargs.get("token", "") if request.resolver_match else ""
        context = {**_base_context(), "start_url": reverse("pro_measures:questionnaire", args=[token])}
        response = render(request, "pro_measures/patient/form_expired.html", context, status=403)
        log_response(
            "Forbidden (%s): %s",
            reason,
            request.path,
            response=response,
            request=request,
            logger=logging.getLogger("django.security.csrf"),
        )
        return response


_patient_csrf_protect = decorator_from_middleware(_PatientCsrfMiddleware)


class _PatientCookieMessages(CookieStorage):
    cookie_name = "patient_messages"


class _PatientSessionMessages(SessionStorage):
    session_key = "_patient_messages"


class PatientMessages(FallbackStorage):
    """The patient pages' own messages, kept apart from a staff session's in the same browser:
    a staff "Saved." never shows on a patient page, a patient's "Welcome back" never on a staff
    page."""

    storage_classes = (_PatientCookieMessages, _PatientSessionMessages)


def patient_page(view):
    """A page anyone with the link may open (no sign-in), with the patient's CSRF page and the
    patient headers on every answer, including the error pages.

    Its URL name must also be in trial.accounts.patient_pages.PATIENT_URL_NAMES, which makes the
    request anonymous whatever staff session the browser holds."""
    checked = _patient_csrf_protect(view)

    @functools.wraps(view)
    def with_headers(request, *args, **kwargs):
        # MessageMiddleware put the staff store here; its process_response saves whichever store
        # the request carries, so the patient's messages go to the patient's cookie.
        request._messages = PatientMessages(request)
        response = checked(request, *args, **kwargs)
        for header, value in PATIENT_HEADERS.items():
            response[header] = value
        return response

    with_headers.patient_page = True  # checked against PATIENT_URL_NAMES by the tests
    # The global CSRF middleware steps aside for `checked`, which does the same check.
    return login_not_required(csrf_exempt(with_headers))


# --- The questionnaire ---------------------------------------------------------------------------


def _section_answered(section: Section, answers: dict[str, Any]) -> bool:
    required = [item for item in section.items if item.required]
    if required:
        return all(answers.get(item.link_id) is not None for item in required)
    return any(answers.get(item.link_id) is not None for item in section.items)


class QuestionnaireView(View):
    """A page behind a patient's link. The link is checked first (a friendly page when it cannot
    be used); then the page runs in the participant's language and time zone."""

    http_method_names = ["get", "post", "head"]
    allow_used = False  # the thank-you page is shown for a link just used

    invitation: Invitation
    definition: Instrument

    def dispatch(self, request, *args, token: str, **kwargs):
        if _blocked(request):
            # Every link from a blocked address, even a good one: otherwise the answer would still
            # tell a guesser which tokens exist.
            return _too_many_attempts(request)
        try:
            invitation = invitations.invitation_for_token(token)
        except LinkProblem as problem:
            if problem.kind == "unknown":
                _count_unknown_link(request)
                return _unknown_link(request)
            if not (self.allow_used and problem.kind == "used"):
                return _link_problem(request, problem)
            invitation = problem.invitation
        self.token = token
        self.invitation = invitation
        self.definition = invitation.instrument
        participant = invitation.participant
        with translation.override(participant.preferred_language), timezone.override(participant.zone):
            return super().dispatch(request, *args, **kwargs)

    # -- helpers --

    @property
    def sections(self) -> tuple[Section, ...]:
        return self.definition.sections

    def saved_answers(self) -> dict[str, Any]:
        response = Response.objects.filter(invitation=self.invitation).only("answers").first()
        return dict(response.answers) if response else {}

    def url(self, name: str, *args) -> str:
        return reverse(f"pro_measures:{name}", args=[self.token, *args])

    def page_url(self, number: int) -> str:
        return self.url("questionnaire-page", number)

    def resume_url(self, answers: dict[str, Any]) -> str:
        """The first page with an unanswered question, or the review when every page is done."""
        for number, section in enumerate(self.sections, start=1):
            if not _section_answered(section, answers):
                return self.page_url(number)
        return self.url("questionnaire-review")

    def context(self, **extra) -> dict[str, Any]:
        return {
            **_base_context(self.invitation.participant.site),
            "definition": self.definition,
            "page_count": len(self.sections),
            **extra,
        }

    def closed_meanwhile(self, request) -> HttpResponse | None:
        """A service refused because the link stopped working during the visit (submitted in
        another tab, revoked, closed): that link's friendly page. None if it still works."""
        try:
            invitations.invitation_for_token(self.token)
        except LinkProblem as problem:
            return _unknown_link(request) if problem.kind == "unknown" else _link_problem(request, problem)
        return None


class StartView(QuestionnaireView):
    def get(self, request):
        answers = self.saved_answers()
        if answers:
            messages.info(request, _("Welcome back. Your earlier answers are saved: carry on here."))
            return redirect(self.resume_url(answers))
        if self.invitation.opened_at is None:
            invitations.invitation_open(invitation=self.invitation)
        question_count = len(self.definition.items)
        return render(
            request,
            "pro_measures/patient/start.html",
            self.context(
                question_count=question_count,
                valid_until=self.invitation.valid_until,
                first_page_url=self.page_url(1),
            ),
        )


class PageView(QuestionnaireView):
    """One section. Next and Back both save the page (nothing typed is lost either way); a page
    opened from the review goes back to the review."""

    def section(self, number: int) -> Section | None:
        return self.sections[number - 1] if 1 <= number <= len(self.sections) else None

    def get(self, request, number: int):
        section = self.section(number)
        if section is None:
            return redirect(self.url("questionnaire"))
        if self.invitation.opened_at is None:
            invitations.invitation_open(invitation=self.invitation)
        form = SectionForm(definition=self.definition, section=section, saved=self.saved_answers())
        return self.render_page(request, number, form, from_review=request.GET.get("from") == "review")

    def post(self, request, number: int):
        section = self.section(number)
        if section is None:
            return redirect(self.url("questionnaire"))
        form = SectionForm(
            request.POST, definition=self.definition, section=section, saved=self.saved_answers()
        )
        from_review = request.POST.get("from") == "review"
        if not form.is_valid():
            return self.render_page(request, number, form, from_review=from_review)
        try:
            invitations.response_save_answers(invitation=self.invitation, answers=form.answers())
        except ValidationError as error:
            closed = self.closed_meanwhile(request)
            if closed is not None:
                return closed
            return self.render_page(
                request, number, form, from_review=from_review, error=patient_message(error)
            )
        if request.POST.get("action") == "back" and number > 1:
            return redirect(self.page_url(number - 1))
        if from_review or number == len(self.sections):
            return redirect(self.url("questionnaire-review"))
        return redirect(self.page_url(number + 1))

    def render_page(self, request, number: int, form: SectionForm, *, from_review: bool, error: str = ""):
        questions = form.questions()
        count = len(self.sections)
        return render(
            request,
            "pro_measures/patient/page.html",
            self.context(
                section=form.section_definition,
                form=form,
                questions=questions,
                error_questions=[q for q in questions if q.error],
                page_error=error or form.page_error,
                page_number=number,
                progress_percent=round(number * 100 / count),
                is_first=number == 1,
                is_last=number == count,
                from_review=from_review,
                action_url=self.page_url(number),
            ),
        )


class ReviewView(QuestionnaireView):
    def get(self, request):
        return self.render_review(request)

    def post(self, request):
        try:
            invitations.response_submit(invitation=self.invitation)
        except ValidationError as error:
            closed = self.closed_meanwhile(request)
            if closed is not None:
                return closed
            return self.render_review(request, error=patient_message(error))
        submitted = request.session.get(SUBMITTED_SESSION_KEY, [])
        request.session[SUBMITTED_SESSION_KEY] = [*submitted[-9:], self.invitation.pk]
        return redirect(self.url("questionnaire-thanks"))

    def render_review(self, request, *, error: str = ""):
        answers = self.saved_answers()
        sections, missing = [], []
        for number, section in enumerate(self.sections, start=1):
            rows = []
            for item in section.items:
                value = answers.get(item.link_id)
                row = {
                    "item": item,
                    "answer": answer_text(item, value),
                    "missing": item.required and value is None,
                    "change_url": f"{self.page_url(number)}?from=review#q-{item.link_id}",
                }
                rows.append(row)
                if row["missing"]:
                    missing.append(row)
            sections.append({"section": section, "rows": rows})
        return render(
            request,
            "pro_measures/patient/review.html",
            self.context(sections=sections, missing=missing, error=error),
        )


class ThanksView(QuestionnaireView):
    """Thank-you for the browser that has just submitted; to anyone else the used link's page."""

    allow_used = True

    def get(self, request):
        if self.invitation.status != InvitationStatus.COMPLETED:
            return redirect(self.url("questionnaire"))
        if self.invitation.pk not in request.session.get(SUBMITTED_SESSION_KEY, []):
            return _link_problem(request, LinkProblem("used", self.invitation))
        return render(request, "pro_measures/patient/thanks.html", self.context())


urlpatterns = [
    path("q/<str:token>/", patient_page(StartView.as_view()), name="questionnaire"),
    path("q/<str:token>/<int:number>/", patient_page(PageView.as_view()), name="questionnaire-page"),
    path("q/<str:token>/review/", patient_page(ReviewView.as_view()), name="questionnaire-review"),
    path("q/<str:token>/thanks/", patient_page(ThanksView.as_view()), name="questionnaire-thanks"),
]
