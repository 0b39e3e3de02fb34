"""Every page's query count is the same at two data sizes (issue #9): the same pages, read by
the demo users, over the synthetic data (`trial.synthetic`) of 3 and of 12 participants."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from participants import visit_views
from participants.models import Participant, VisitStatus
from pro_measures.invitations import link_create
from pro_measures.models import Invitation, InvitationStatus
from tests.conftest import sign_in
from tests.pro_measures.test_patient_pages import new_address  # noqa: F401 - fixture
from tests.trial.test_synthetic import demo  # noqa: F401 - the demo data fixture
from trial.data_management import views as data_management_views
from trial.models import User
from trial.signatures import views as signature_views
from trial.synthetic import synthetic_seed


def user(email_start: str) -> User:
    return User.objects.get(email__startswith=email_start)


def _count(client: Client, url: str) -> int:
    client.get(url)  # the first request of a session records its activity; not the page's cost
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


def page_urls() -> dict[str, tuple[str, str]]:
    """(who reads it, URL) of each page, for one participant with a completed week-4 visit and
    one questionnaire open now."""
    participant = (
        Participant.objects.exclude(study_id="01-001")
        .filter(visits__status=VisitStatus.COMPLETED, visits__code="W4")
        .order_by("study_id")
        .first()
    )
    visit = participant.visits.get(code="W4")
    invitation = Invitation.objects.filter(
        status=InvitationStatus.SENT, valid_until__gt=timezone.now(), opens_at__lte=timezone.now()
    ).first()
    token = link_create(invitation)
    return {
        "today list": ("coordinator", reverse("participants:today")),
        "participant list": ("coordinator", reverse("participants:participant-list")),
        "participant timeline": (
            "coordinator",
            reverse("participants:participant-detail", args=[participant.pk]),
        ),
        "visit page": ("coordinator", reverse("participants:visit-detail", args=[visit.pk])),
        "measurement table": ("coordinator", reverse("lesions:visit-table", args=[visit.pk])),
        "investigator dashboard": ("investigator", reverse("dashboard")),
        "signature queue": ("investigator", reverse("signatures:queue")),
        "query list": ("monitor", reverse("data_management:query-list")),
        "questionnaire start": ("patient", reverse("pro_measures:questionnaire", args=[token])),
        "questionnaire page": ("patient", reverse("pro_measures:questionnaire-page", args=[token, 1])),
    }


def page_counts(urls: dict[str, tuple[str, str]], patient_address: str) -> dict[str, int]:
    clients = {role: sign_in(Client(), user(role)) for role in ("coordinator", "investigator", "monitor")}
    # An address of this test only: the bad-link throttle's counts are shared by every test run.
    clients["patient"] = Client(REMOTE_ADDR=patient_address)
    return {page: _count(clients[who], url) for page, (who, url) in urls.items()}


# Committed batches, as in a real database (a signature's time is its transaction's).
@pytest.mark.django_db(transaction=True)
def test_every_pages_query_count_is_the_same_with_3_and_15_participants(demo, new_address, monkeypatch):  # noqa: F811
    # Small pages, so that the work lists run to several pages with more participants.
    monkeypatch.setattr(visit_views, "TODAY_PAGE_SIZE", 2)
    monkeypatch.setattr(data_management_views, "QUERY_PAGE_SIZE", 2)
    monkeypatch.setattr(signature_views, "QUEUE_PAGE_SIZE", 2)
    address = new_address()
    today = timezone.now().date()
    synthetic_seed(participants=3, seed=5, base_date=today)
    urls = page_urls()
    small = page_counts(urls, address)
    synthetic_seed(participants=12, seed=6, base_date=today)
    assert Participant.objects.count() == 1 + 15
    assert page_counts(urls, address) == small
