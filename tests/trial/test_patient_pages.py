"""The allow-list of patient pages (trial/accounts/patient_pages.py): exactly the views built as
patient pages, each public, and nothing else. What those pages do with a staff session in the
same browser is tested in tests/pro_measures/test_patient_pages.py."""

from __future__ import annotations

from django.test import RequestFactory
from django.urls import URLResolver, get_resolver, reverse

from trial.accounts.patient_pages import PATIENT_URL_NAMES, is_patient_page


def named_views(resolver=None, namespace: str = ""):
    for pattern in (resolver or get_resolver()).url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from named_views(pattern, inner)
        elif pattern.name:
            yield namespace + pattern.name, pattern.callback


def test_the_allow_list_is_exactly_the_patient_pages():
    views = dict(named_views())
    marked = {name for name, view in views.items() if getattr(view, "patient_page", False)}
    assert marked == PATIENT_URL_NAMES, (
        "a patient page is missing from the allow-list, or a staff page is on it"
    )
    for name in PATIENT_URL_NAMES:
        assert views[name].login_required is False, name  # reachable without signing in


def test_patient_urls_are_recognised_and_staff_urls_are_not():
    factory = RequestFactory()
    token = "t" * 43
    for url in (
        reverse("pro_measures:questionnaire", args=[token]),
        reverse("pro_measures:questionnaire-page", args=[token, 2]),
        reverse("pro_measures:questionnaire-review", args=[token]),
        reverse("pro_measures:questionnaire-thanks", args=[token]),
    ):
        assert is_patient_page(factory.get(url)), url
    for url in ("/", "/q/", "/no-such-page/", reverse("pro_measures:invitation-overview"), reverse("login")):
        assert not is_patient_page(factory.get(url)), url
