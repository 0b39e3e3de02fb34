"""Source data verification: a visit or a participant verified in one action; a later change of
any verified record (or a new record) shows the verification as cleared."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from lesions.models import UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import safety
from tests.conftest import sign_in
from tests.lesions.conftest import measurement
from trial.data_management import verification
from trial.data_management.models import VerifiedRecord

pytestmark = pytest.mark.django_db


def correct_l1(visit, coordinator, length="11.0"):
    row = UltrasoundMeasurement.objects.get(visit=visit, lesion__label="L1")
    visit_lesions_save(
        actor=coordinator,
        visit=visit,
        rows=[
            LesionRow(
                row.lesion, measurement=measurement(length, "8.0", "5.0"), measurement_version=row.row_version
            )
        ],
        reason="caliper misplaced",
    )


def test_verifying_a_visit_stores_every_record_with_its_last_event(completed_visit, monitor):
    done = verification.verification_record(actor=monitor, visit=completed_visit)
    kinds = set(
        VerifiedRecord.objects.filter(verification=done).values_list("content_type__model", flat=True)
    )
    assert {
        "visit",
        "ultrasoundmeasurement",
        "injection",
        "pregnancytest",
        "adverseevent",
        "aereview",
    } <= kinds
    assert all(r.last_event_id > 0 for r in done.records.all())
    assert not verification.latest_verification_status(visit=completed_visit).cleared


def test_an_edit_after_verification_clears_it(completed_visit, monitor, coordinator):
    verification.verification_record(actor=monitor, visit=completed_visit)
    correct_l1(completed_visit, coordinator)
    status = verification.latest_verification_status(visit=completed_visit)
    changed = UltrasoundMeasurement.objects.get(visit=completed_visit, lesion__label="L1")
    assert status.cleared
    assert status.changed == [f"{UltrasoundMeasurement._meta.verbose_name} #{changed.pk}"]


def test_a_new_record_at_the_visit_clears_it(completed_visit, monitor, coordinator):
    verification.verification_record(actor=monitor, visit=completed_visit)
    safety.pregnancy_test_record(
        actor=coordinator,
        participant=completed_visit.participant,
        test_type="urine_hcg",
        test_date=completed_visit.visit_date,
        result="negative",
        visit=completed_visit,
    )
    assert verification.latest_verification_status(visit=completed_visit).cleared


def test_verifying_again_after_a_change_verifies_the_new_values(completed_visit, monitor, coordinator):
    verification.verification_record(actor=monitor, visit=completed_visit)
    correct_l1(completed_visit, coordinator)
    verification.verification_record(actor=monitor, visit=completed_visit)
    assert not verification.latest_verification_status(visit=completed_visit).cleared


def test_participant_verification_covers_every_visit(completed_visit, monitor, coordinator):
    participant = completed_visit.participant
    verification.verification_record(actor=monitor, participant=participant)
    assert not verification.latest_verification_status(participant=participant).cleared
    correct_l1(completed_visit, coordinator)
    assert verification.latest_verification_status(participant=participant).cleared


def test_only_monitors_of_the_site_verify(completed_visit, coordinator, monitor_b):
    with pytest.raises(PermissionDenied):
        verification.verification_record(actor=coordinator, visit=completed_visit)
    with pytest.raises(PermissionDenied):
        verification.verification_record(actor=monitor_b, visit=completed_visit)


def test_verification_page_shows_verified_then_cleared(completed_visit, monitor, coordinator, client):
    url = reverse("data_management:visit-verification", args=[completed_visit.pk])
    sign_in(client, monitor)
    assert "Not verified yet" in client.get(url).content.decode()
    assert client.post(url).status_code == 302
    assert 'data-cleared="false"' in client.get(url).content.decode()
    correct_l1(completed_visit, coordinator)
    page = client.get(url).content.decode()
    assert 'data-cleared="true"' in page and "verification cleared" in page


def test_coordinator_sees_but_cannot_mark_verified(completed_visit, coordinator, client):
    url = reverse("data_management:visit-verification", args=[completed_visit.pk])
    sign_in(client, coordinator)
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 403
