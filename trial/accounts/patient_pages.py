"""The pages a patient opens from an e-mailed questionnaire link belong to no staff session.

Patients are not users: the link's token is their only credential (pro_measures.views). The
browser that opens a link may still hold a staff session - a coordinator showing a participant
the questionnaire on the clinic PC, a shared tablet, a sign-in left at the password step - and
nothing of that session may change what a patient page does or shows: no redirect to the second
factor, no sign-out when the staff session has run out, no current site, no staff member named
in the audit trail as the author of the patient's answers. So, for the URL names below, the
request runs as anonymous from the start (PatientPagesMiddleware, right after Django's
AuthenticationMiddleware); the staff session itself is left as it was.

An explicit allow-list of URL names, not a path prefix or a namespace: making a page public is a
reviewed change here, and tests/trial/test_patient_pages.py checks that the list and
the views built by `pro_measures.views.patient_page` are the same.
"""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.urls import Resolver404, resolve

PATIENT_URL_NAMES = frozenset(
    {
        "pro_measures:questionnaire",
        "pro_measures:questionnaire-page",
        "pro_measures:questionnaire-review",
        "pro_measures:questionnaire-thanks",
    }
)


def is_patient_page(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return match.view_name in PATIENT_URL_NAMES


async def _anonymous() -> AnonymousUser:
    return AnonymousUser()


class PatientPagesMiddleware:
    """On a patient page, `request.user` is anonymous whatever the session holds, for every
    middleware after this one (sign-in, second factor, session limits, site, audit) and the view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_patient_page(request):
            request.user = AnonymousUser()
            request.auser = _anonymous
        return self.get_response(request)
