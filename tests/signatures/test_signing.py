"""Signing a visit (21 CFR 11.50, 11.70, 11.200): credentials again, bound to the content, voided
by a later edit."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django_otp.oath import totp

from lesions.models import UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import visits as visit_services
from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    measurement,
    participant,
    report_text,
    screen,
    visit_data,
)
from trial.audit import event_model_for
from trial.reports.services import visit_report_generate
from trial.signatures import services
from trial.signatures.models import Signature, SigningFailure

pytestmark = pytest.mark.django_db


def current_code(user) -> str:
    device = user.totpdevice_set.get()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def sign(investigator, visit, password=DEFAULT_PASSWORD):  # noqa: F811
    """Sign as a service caller without a session: the code is always asked for."""
    return services.visits_sign(
        actor=investigator,
        visits=[visit],
        meaning="reviewed_approved",
        password=password,
        otp_token=current_code(investigator),
    )


def correct_measurement(visit, lesion, coordinator, length="11.0", width="8.0", depth="5.0"):  # noqa: F811
    """A coordinator's correction of a lesion's measurement at the visit (with a reason)."""
    row = UltrasoundMeasurement.objects.get(visit=visit, lesion=lesion)
    visit_lesions_save(
        actor=coordinator,
        visit=visit,
        rows=[
            LesionRow(
                lesion, measurement=measurement(length, width, depth), measurement_version=row.row_version
            )
        ],
        reason="caliper misplaced",
    )


def test_signature_records_who_when_meaning_and_the_content_hash(completed_visit, investigator):  # noqa: F811
    (signature,) = sign(investigator, completed_visit)
    assert signature.printed_name == "Ira Investigator" and signature.signer == investigator
    assert signature.signed_at == dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC)
    assert signature.get_meaning_display() == "Reviewed and approved"
    assert services.signature_verify(signature).valid
    assert len(signature.content_hash) == 64


def test_a_signature_does_not_verify_against_other_content(completed_visit, investigator):  # noqa: F811
    (signature,) = sign(investigator, completed_visit)
    signature.content["measurements"][0]["length_mm"] = "99.0"  # someone edits the stored copy
    assert not services.signature_verify(signature).valid
    signature.refresh_from_db()
    signature.content_hash = "0" * 64  # or the stored hash
    assert not services.signature_verify(signature).valid


def test_wrong_password_is_refused_logged_and_signs_nothing(completed_visit, investigator):  # noqa: F811
    with pytest.raises(ValidationError, match="password is not correct"):
        sign(investigator, completed_visit, password="not my password")
    assert not Signature.objects.exists()
    failure = SigningFailure.objects.get()
    assert (failure.user, failure.visit, failure.reason) == (investigator, completed_visit, "wrong password")


def test_signing_locks_after_the_failure_limit(completed_visit, investigator, settings):  # noqa: F811
    settings.SIGNATURE_FAILURE_LIMIT = 2
    for _ in range(2):
        with pytest.raises(ValidationError):
            sign(investigator, completed_visit, password="wrong")
    with pytest.raises(ValidationError, match="locked"):
        sign(investigator, completed_visit)  # even the right password
    assert not Signature.objects.exists()


def test_a_coordinator_cannot_sign(completed_visit, coordinator):  # noqa: F811
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        sign(coordinator, completed_visit)


def test_an_edit_after_signing_voids_the_signature_with_an_audit_entry(
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    lesions,  # noqa: F811
):
    (signature,) = sign(investigator, completed_visit)
    assert not services.visits_to_sign(investigator).queryset.filter(pk=completed_visit.pk).exists()
    correct_measurement(completed_visit, lesions[0], coordinator)
    assert services.signatures_verify_changed() == 1
    signature.refresh_from_db()
    assert signature.status == "void" and signature.voided_at is not None
    assert "changed after signing" in signature.void_reason
    void_event = event_model_for(Signature).objects.filter(pgh_obj_id=signature.pk, pgh_label="update").get()
    assert void_event.status == "void" and void_event.pgh_context["actor"] == "signature verification"
    queued = services.visits_to_sign(investigator).queryset.get(pk=completed_visit.pk)
    assert queued.was_signed
    # A new signature binds the new content (a minute later: a TOTP code is used once).
    with time_machine.travel(dt.datetime(2026, 11, 3, 15, 1, tzinfo=dt.UTC), tick=False):
        (again,) = sign(investigator, completed_visit)
    assert again.content_hash != signature.content_hash and services.signature_verify(again).valid


def test_an_unchanged_save_keeps_the_signature(completed_visit, investigator, coordinator, lesions):  # noqa: F811
    (signature,) = sign(investigator, completed_visit)
    correct_measurement(completed_visit, lesions[0], coordinator, length="12.0")  # same value
    assert services.signatures_verify_changed() == 0
    signature.refresh_from_db()
    assert signature.status == "valid"


def test_the_report_prints_the_signature_block(completed_visit, investigator):  # noqa: F811
    (signature,) = sign(investigator, completed_visit)
    text = " ".join(report_text(visit_report_generate(visit_id=completed_visit.pk)).split())
    assert "Ira Investigator Reviewed and approved 2026-11-03 15:00:00 UTC Valid" in text
    assert signature.content_hash in text.replace(" ", "")


# --- Through the page: password again, TOTP when the session's check is old ------------------


def test_signing_page_asks_for_a_code_when_the_last_check_is_older_than_the_setting(
    client,
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
):
    sign_in(client, investigator)
    url = f"/signatures/visits/{completed_visit.pk}/"
    page = client.get(url).content.decode()
    assert "Your password" in page and "authenticator app" not in page
    with time_machine.travel(dt.datetime(2026, 11, 3, 15, 16, tzinfo=dt.UTC), tick=False):
        page = client.get(url).content.decode()
        assert "Code from your authenticator app" in page
        response = client.post(
            url, {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD, "otp_token": "000000"}
        )
        assert response.status_code == 400 and not Signature.objects.exists()
        assert SigningFailure.objects.get().reason == "wrong second-factor code"
    # django-otp makes the signer wait after a wrong code.
    with time_machine.travel(dt.datetime(2026, 11, 3, 15, 17, tzinfo=dt.UTC), tick=False):
        code = current_code(investigator)
        response = client.post(
            url, {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD, "otp_token": code}
        )
        assert response.status_code == 302
    signature = Signature.objects.get()
    assert signature.second_factor_checked
    page = client.get(url).content.decode()
    assert "Ira Investigator" in page and signature.content_hash in page


def test_wrong_password_on_the_page_counts_toward_the_sign_in_lockout(
    client,
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
):
    from axes.models import AccessAttempt

    sign_in(client, investigator)
    response = client.post(
        f"/signatures/visits/{completed_visit.pk}/", {"meaning": "reviewed_approved", "password": "wrong"}
    )
    assert response.status_code == 400 and "password is not correct" in response.content.decode()
    assert AccessAttempt.objects.get(username=investigator.email).failures_since_start == 1


def test_queue_lists_unsigned_visits_and_signs_several(client, completed_visit, investigator):  # noqa: F811
    sign_in(client, investigator)
    page = client.get("/signatures/queue/").content.decode()
    assert "A1-001" in page and "Not signed" in page
    response = client.post(
        "/signatures/queue/",
        {"visits": [completed_visit.pk], "meaning": "reviewed_approved", "password": DEFAULT_PASSWORD},
    )
    assert response.status_code == 302, response.context["form"].errors
    assert Signature.objects.get().visit == completed_visit
    # The visit left the queue; the eligibility confirmed without a signature still waits.
    page = client.get("/signatures/queue/").content.decode()
    assert 'data-testid="queue-row"' not in page and 'data-testid="queue-eligibility-row"' in page


@pytest.fixture
def two_completed_visits(completed_visit, coordinator, django_capture_on_commit_callbacks):  # noqa: F811
    """The completed baseline and a completed unscheduled visit on the same day (queued after it)."""
    with django_capture_on_commit_callbacks(execute=False):
        extra = visit_services.visit_add_unscheduled(
            actor=coordinator, participant=completed_visit.participant, visit_date=TODAY, reason="flare"
        )
        extra = visit_services.visit_complete(actor=coordinator, visit=extra, visit_date=TODAY)
    return completed_visit, extra


def queued_visits(response) -> list[int]:
    assert response.status_code in (200, 400)
    return [v.pk for v in response.context["visits"]]


def test_queue_shows_a_page_of_each_kind_with_its_total(
    client,
    two_completed_visits,
    investigator,  # noqa: F811
    monkeypatch,
):
    from trial.signatures import views

    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 1)
    first, second = two_completed_visits
    sign_in(client, investigator)
    response = client.get("/signatures/queue/")
    assert queued_visits(response) == [first.pk]
    page = response.content.decode()
    assert "2 visits waiting, 1–1 shown" in page
    nav = page.split('aria-label="Pages of visits waiting"')[1].split("</nav>")[0]
    assert 'href="?visits_page=2#queue-visits"' in nav and 'aria-current="page"' in nav
    # The eligibility list keeps its own (single) page.
    assert 'data-testid="queue-eligibility-row"' in page
    assert queued_visits(client.get("/signatures/queue/", {"visits_page": "2"})) == [second.pk]
    for bad, shown in (("abc", first), ("-1", first), ("0", first), ("99999", second)):
        assert queued_visits(client.get("/signatures/queue/", {"visits_page": bad})) == [shown.pk], bad


def test_queue_signs_only_ticked_items_of_the_pages_shown(
    client,
    two_completed_visits,
    investigator,  # noqa: F811
    monkeypatch,
):
    from trial.signatures import views

    monkeypatch.setattr(views, "QUEUE_PAGE_SIZE", 1)
    first, second = two_completed_visits
    sign_in(client, investigator)
    post = {"visits": [second.pk], "meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}
    # The second visit is on page 2: a POST from page 1 cannot sign it, nor anything else.
    response = client.post("/signatures/queue/", post)
    assert response.status_code == 400 and not Signature.objects.exists()
    assert queued_visits(response) == [first.pk]
    response = client.post("/signatures/queue/?visits_page=2", post)
    assert response.status_code == 302 and response["Location"] == "/signatures/queue/?visits_page=2"
    assert [s.visit for s in Signature.objects.all()] == [second]
    # Back on the same address, past the end now: the last page left, with the first visit.
    assert queued_visits(client.get(response["Location"])) == [first.pk]
