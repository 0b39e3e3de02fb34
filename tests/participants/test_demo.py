"""`manage.py seed_demo`: demo site and users, a demo consent document and two screened people."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from participants.models import ConsentDocument, ConsentRecord, Participant, Screening, ScreeningOutcome
from participants.services import consent_in_force
from tests.conftest import sign_in
from trial.audit import event_model_for
from trial.models import Site, User

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "sites": Site.objects.count(),
        "users": User.objects.count(),
        "consent documents": ConsentDocument.objects.count(),
        "screenings": Screening.objects.count(),
        "consents": ConsentRecord.objects.count(),
        "participants": Participant.objects.count(),
        "screening events": event_model_for(Screening).objects.count(),
    }


def test_seed_demo_screens_one_failure_and_enrols_one_person_and_is_idempotent():
    output = seed()
    first = counts()
    assert first["consent documents"] == 1 and first["screenings"] == 2 and first["participants"] == 1

    failure, enrolled = Screening.objects.filter(site__code="01").order_by("screening_number")
    assert failure.outcome == ScreeningOutcome.SCREEN_FAILURE
    assert failure.eligibility.failing_criteria == ["IN2"]
    assert enrolled.outcome == ScreeningOutcome.ENROLLED
    assert enrolled.eligibility.confirmed_by.email == "investigator@demo.example.org"
    assert consent_in_force(enrolled).document.version == "1.0"
    assert enrolled.participant.study_id == "01-001"
    assert "coordinator@demo.example.org" in output
    assert f"{failure.screening_number}: Screen failure" in output
    assert f"{enrolled.screening_number}: Enrolled as 01-001" in output

    seed()
    assert counts() == first


def test_the_demo_consent_document_is_a_real_pdf_marked_demo_and_downloads(client):
    seed()
    document = ConsentDocument.objects.get()
    assert "DEMO" in document.title
    with document.document.open("rb") as handle:
        content = handle.read()
    assert content.startswith(b"%PDF-") and len(content) > 1000
    monitor = User.objects.get(email="monitor@demo.example.org")
    response = sign_in(client, monitor).get(
        reverse("participants:consent-document-download", args=[document.pk])
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content


def test_the_demo_screening_log_shows_both_people_without_names(client):
    seed()
    monitor = User.objects.get(email="monitor@demo.example.org")
    html = sign_in(client, monitor).get(reverse("participants:screening-log")).content.decode()
    assert "01-001" in html and "IN2: Over 18 years of age" in html
    assert "Frankie" not in html and "Erin" not in html
