"""Consent document pages: the study team adds a version, re-consent flags follow, the PDF is
served only to clinical roles and only while it is the file that was approved."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from participants import services
from participants.consent_forms import MAX_CONSENT_PDF_BYTES
from participants.models import ConsentDocument, Participant
from tests.factories import ELIGIBLE_ANSWERS, pdf_upload
from tests.participants.conftest import TODAY
from trial.roles import Role

pytestmark = pytest.mark.django_db

LIST_URL = reverse("participants:consent-document-list")
CREATE_URL = reverse("participants:consent-document-create")


def version_row(html: str, version: str, language: str = "en") -> str:
    """The text of one version's table row on the list page."""
    match = re.search(
        rf'data-testid="consent-version-{re.escape(version)}-{language}">(.*?)</tr>', html, re.S
    )
    assert match, f"no row for version {version}"
    return re.sub(r"<[^>]+>", " ", match.group(1))


def words(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def upload_data(**overrides) -> dict:
    data = {
        "document": pdf_upload("consent-v2.pdf", b"version 2 text"),
        "version": "2.0",
        "language": "en",
        "title": "Participant information and consent",
        "approved_on": "2026-10-20",
        "effective_from": TODAY.isoformat(),
        "effective_until": "",
    }
    data.update(overrides)
    return data


def enroll(screening, coordinator) -> Participant:
    return services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)


@pytest.fixture
def enrolled(consented, coordinator):
    return enroll(consented, coordinator)


def test_investigator_adds_a_version_and_the_enrolled_participant_is_flagged_for_reconsent(
    signed_in, investigator, enrolled
):
    client = signed_in(investigator)
    before = client.get(LIST_URL).content.decode()
    assert "In force today" in version_row(before, "1.0")
    assert "must re-consent" not in before

    response = client.post(CREATE_URL, upload_data(), follow=True)

    assert response.redirect_chain[-1][0] == LIST_URL
    html = response.content.decode()
    assert "Version 2.0 added and in force. 1 participant on study must re-consent." in words(html)
    new_row, old_row = words(version_row(html, "2.0")), words(version_row(html, "1.0"))
    assert "In force today" in new_row and "1 participant" in new_row
    assert "Retired" in old_row and "1 person" in old_row  # Jane Doe signed v1.0
    assert "1 participant on study at your sites must re-consent" in words(html)
    document = ConsentDocument.objects.get(version="2.0", language="en")
    assert document.sha256 in new_row
    assert list(Participant.objects.needing_reconsent(on=TODAY)) == [enrolled]


def test_a_version_taking_effect_later_is_upcoming_and_flags_nobody_yet(signed_in, investigator, enrolled):
    client = signed_in(investigator)
    response = client.post(CREATE_URL, upload_data(effective_from="2026-12-01"), follow=True)
    html = response.content.decode()
    assert "takes effect on 2026-12-01" in words(html)
    assert "Upcoming" in version_row(html, "2.0")
    assert "In force today" in version_row(html, "1.0")
    assert "must re-consent" not in html


def test_a_data_manager_adds_a_version_too(make_user, signed_in, site_a, consent_v1):
    data_manager = make_user(role=Role.DATA_MANAGER, sites=[site_a])
    response = signed_in(data_manager).post(CREATE_URL, upload_data())
    assert response.status_code == 302
    assert ConsentDocument.objects.filter(version="2.0").exists()


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.MONITOR])
def test_coordinators_and_monitors_cannot_add_a_version(make_user, signed_in, site_a, role):
    client = signed_in(make_user(role=role, sites=[site_a]))
    assert client.get(CREATE_URL).status_code == 403
    assert client.post(CREATE_URL, upload_data()).status_code == 403
    assert not ConsentDocument.objects.exists()
    assert "Add an approved version" not in client.get(LIST_URL).content.decode()


def test_a_file_that_is_not_a_pdf_is_refused_with_a_field_error(signed_in, investigator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    word_file = SimpleUploadedFile(
        "consent.pdf", b"PK\x03\x04 a Word document", content_type="application/pdf"
    )
    response = signed_in(investigator).post(CREATE_URL, upload_data(document=word_file))
    assert response.status_code == 200
    assert "This file is not a PDF." in response.content.decode()
    assert response.context["form"].errors["document"]
    assert not ConsentDocument.objects.exists()


def test_a_pdf_over_the_size_limit_is_refused(signed_in, investigator):
    big = pdf_upload("scan.pdf", b"x" * MAX_CONSENT_PDF_BYTES)
    response = signed_in(investigator).post(CREATE_URL, upload_data(document=big))
    assert response.status_code == 200
    assert "a consent document may be at most 20.0" in response.content.decode()
    assert not ConsentDocument.objects.exists()


def test_dates_out_of_order_and_a_reused_version_number_are_refused(signed_in, investigator, consent_v1):
    client = signed_in(investigator)
    response = client.post(
        CREATE_URL,
        upload_data(approved_on="2026-11-10", effective_from="2026-11-05", effective_until="2026-11-01"),
    )
    errors = response.context["form"].errors
    assert "before the ethics committee approved it" in errors["effective_from"][0]
    assert "before its start" in errors["effective_until"][0]
    response = client.post(CREATE_URL, upload_data(version="1.0"))
    assert "Version 1.0 in this language already exists" in response.context["form"].errors["version"][0]
    response = client.post(CREATE_URL, upload_data(version="../2.0"))
    assert (
        "letters, digits, dots, hyphens and underscores only" in response.context["form"].errors["version"][0]
    )
    assert ConsentDocument.objects.count() == 1


def download_url(document) -> str:
    return reverse("participants:consent-document-download", args=[document.pk])


def test_anonymous_visitors_are_sent_to_sign_in_for_the_pdf(client, consent_v1):
    response = client.get(download_url(consent_v1))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER])
def test_clinical_roles_download_the_pdf_as_an_attachment(make_user, signed_in, site_a, consent_v1, role):
    response = signed_in(make_user(role=role, sites=[site_a])).get(download_url(consent_v1))
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"%PDF-1.4\ndemo consent text\n%%EOF\n"
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="consent-v1.0-en.pdf"'
    assert response["X-Content-Type-Options"] == "nosniff"


def test_an_administrator_without_a_clinical_role_gets_no_pdf(make_user, signed_in, site_a, consent_v1):
    response = signed_in(make_user(role=Role.ADMINISTRATOR, sites=[site_a])).get(download_url(consent_v1))
    assert response.status_code == 403


def test_a_tampered_file_is_refused_with_a_clear_message(signed_in, coordinator, consent_v1):
    with consent_v1.document.storage.open(consent_v1.document.name, "wb") as handle:
        handle.write(b"%PDF-1.4\nsomething else entirely\n%%EOF\n")
    response = signed_in(coordinator).get(download_url(consent_v1))
    assert response.status_code == 409
    assert not getattr(response, "streaming", False)
    html = words(response.content.decode())
    assert "has changed since it was uploaded (its SHA-256 no longer matches), so it is not served" in html


def test_a_missing_file_is_reported_not_a_server_error(signed_in, coordinator, consent_v1):
    consent_v1.document.storage.delete(consent_v1.document.name)
    response = signed_in(coordinator).get(download_url(consent_v1))
    assert response.status_code == 404
    assert "missing from storage" in response.content.decode()


def test_list_query_count_does_not_grow_with_versions_and_participants(
    signed_in, investigator, coordinator, screen, consent_v1
):
    client = signed_in(investigator)
    client.get(LIST_URL)  # warm-up: session, permissions cache

    def add(n: int, version: str) -> int:
        for _ in range(n):
            screening = screen()
            services.eligibility_record(
                actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS)
            )
            services.eligibility_confirm(actor=investigator, screening=screening)
            document = ConsentDocument.objects.current(language="en", on=TODAY)
            services.consent_record(
                actor=coordinator,
                screening=screening,
                document=document,
                consented_at=timezone.now(),
                participant_signature="Jane Doe",
                attestation=True,
                copy_given=True,
            )
            enroll(screening, coordinator)
        services.consent_document_add(
            actor=investigator,
            version=version,
            language="en",
            title="Participant information and consent",
            approved_on=dt.date(2026, 10, 1),
            effective_from=TODAY,
            document=pdf_upload(body=version.encode()),
        )
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(LIST_URL)
        assert response.status_code == 200
        return len(ctx.captured_queries)

    few = add(1, "2.0")
    many = add(6, "3.0")
    assert few == many
