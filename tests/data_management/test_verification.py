"""Source data verification: a visit or a participant verified in one action; a later change of
any verified record (or a new record) shows the verification as cleared."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from lesions.models import Injection, UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import safety
from participants.models import AdverseEvent
from tests.conftest import sign_in
from tests.lesions.conftest import measurement
from trial.audit import event_model_for
from trial.data_management import verification
from trial.data_management.models import Verification, VerifiedRecord

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


# --- Whole forms and single fields --------------------------------------------------------------


def correct_l1_to(visit, coordinator, *, length="12.0", width="8.0", depth="5.0"):
    row = UltrasoundMeasurement.objects.get(visit=visit, lesion__label="L1")
    visit_lesions_save(
        actor=coordinator,
        visit=visit,
        rows=[
            LesionRow(
                row.lesion, measurement=measurement(length, width, depth), measurement_version=row.row_version
            )
        ],
        reason="source says otherwise",
    )
    return row


def l1(visit):
    return UltrasoundMeasurement.objects.get(visit=visit, lesion__label="L1")


def field_state(record) -> dict[str, bool | None]:
    """field -> cleared (None: not verified)."""
    return {
        row.name: (row.cleared if row.verification else None)
        for row in verification.record_status(record).fields
    }


def test_a_monitor_verifies_a_visits_measurement_table_in_one_action(completed_visit, monitor):
    done = verification.form_verification_record(
        actor=monitor, model=UltrasoundMeasurement, visit=completed_visit
    )
    rows = set(UltrasoundMeasurement.objects.filter(visit=completed_visit).values_list("pk", flat=True))
    assert len(rows) == 2
    assert set(done.records.values_list("object_id", flat=True)) == rows
    forms = {row.model: row for row in verification.visit_forms_status(completed_visit)}
    assert not forms[UltrasoundMeasurement].status.cleared
    assert forms[Injection].status is None  # another form of the visit: not verified
    # Each row's page shows the table's verification, field by field.
    assert set(field_state(l1(completed_visit)).values()) == {False}
    # Audited, saying what was verified.
    event = event_model_for(Verification).objects.get(pgh_obj_id=done.pk)
    assert event.pgh_context["reason"] == "Source data verified: ultrasound measurement"
    assert event.pgh_context["user"] == monitor.pk


def test_a_change_to_a_row_clears_its_forms_verification_and_no_other_form(
    completed_visit, participant, monitor, coordinator
):
    verification.form_verification_record(actor=monitor, model=UltrasoundMeasurement, visit=completed_visit)
    event = AdverseEvent.objects.get(participant=participant)
    verification.form_verification_record(actor=monitor, model=AdverseEvent, record=event)
    correct_l1_to(completed_visit, coordinator, length="13.0")
    forms = {row.model: row for row in verification.visit_forms_status(completed_visit)}
    changed = l1(completed_visit)
    assert forms[UltrasoundMeasurement].status.changed == [f"ultrasound measurement #{changed.pk}"]
    assert verification.record_status(event).form.cleared is False


def test_a_change_to_a_field_clears_that_field_and_the_form_but_not_an_unrelated_field(
    completed_visit, monitor, coordinator
):
    record = l1(completed_visit)
    verification.form_verification_record(
        actor=monitor, model=UltrasoundMeasurement, record=record, field_names=["length_mm", "depth_mm"]
    )
    verification.form_verification_record(actor=monitor, model=UltrasoundMeasurement, record=record)
    assert verification.record_status(record).form.cleared is False

    correct_l1_to(completed_visit, coordinator, width="9.0")  # a change elsewhere
    status = verification.record_status(record)
    assert status.form.cleared is True
    state = field_state(record)
    assert state["width_mm"] is True
    assert state["length_mm"] is False and state["depth_mm"] is False

    correct_l1_to(completed_visit, coordinator, width="9.0", length="14.0")  # the field itself
    state = field_state(record)
    assert state["length_mm"] is True and state["depth_mm"] is False


def test_a_field_level_verification_alone_is_cleared_only_by_its_fields(
    completed_visit, monitor, coordinator
):
    record = l1(completed_visit)
    done = verification.form_verification_record(
        actor=monitor, model=UltrasoundMeasurement, record=record, field_names=["length_mm"]
    )
    correct_l1_to(completed_visit, coordinator, depth="6.0")
    assert not verification.verification_status(done).cleared
    assert field_state(record)["depth_mm"] is None  # never verified
    correct_l1_to(completed_visit, coordinator, depth="6.0", length="15.0")
    status = verification.verification_status(done)
    assert status.cleared and status.changed_fields == ["length_mm"]


def test_an_adverse_event_form_is_verified_and_cleared_by_its_follow_up(
    completed_visit, participant, monitor, coordinator
):
    event = AdverseEvent.objects.get(participant=participant)
    verification.form_verification_record(actor=monitor, model=AdverseEvent, record=event)
    safety.adverse_event_update(
        actor=coordinator,
        event=event,
        values={"outcome": "recovered"},
        reason="follow-up call",
        expected_version=event.row_version,
    )
    status = verification.record_status(event)
    assert status.form.cleared
    state = field_state(event)
    assert state["outcome"] is True and state["grade"] is False


def test_fields_are_verified_on_one_record_and_must_exist(completed_visit, monitor, coordinator):
    with pytest.raises(ValidationError):
        verification.form_verification_record(
            actor=monitor, model=UltrasoundMeasurement, visit=completed_visit, field_names=["length_mm"]
        )
    with pytest.raises(ValidationError):
        verification.form_verification_record(
            actor=monitor, model=UltrasoundMeasurement, record=l1(completed_visit), field_names=["nope"]
        )
    with pytest.raises(PermissionDenied):
        verification.form_verification_record(
            actor=coordinator, model=UltrasoundMeasurement, record=l1(completed_visit)
        )


def test_monitor_verifies_a_form_and_fields_on_the_pages_and_sees_what_was_cleared(
    completed_visit, monitor, coordinator, client
):
    record = l1(completed_visit)
    url = reverse("data_management:record-verification", args=["lesions.ultrasoundmeasurement", record.pk])
    visit_url = reverse("data_management:visit-verification", args=[completed_visit.pk])
    sign_in(client, monitor)
    assert url in client.get(reverse("lesions:visit-table", args=[completed_visit.pk])).content.decode()
    assert client.post(url, {"action": "fields", "field": ["length_mm"]}).status_code == 302
    page = client.get(url).content.decode()
    assert 'data-field="length_mm" data-cleared="false"' in page
    assert 'data-field="width_mm" data-cleared="none"' in page
    length_row = page.split('data-field="length_mm"')[1].split("</tr>")[0]
    assert "by Mona Monitor" in length_row and "on 2026-11-03" in length_row
    client.post(url, {"action": "form"})
    client.post(visit_url, {"form": "lesions.ultrasoundmeasurement"})
    page = client.get(visit_url).content.decode()
    assert 'data-form="lesions.ultrasoundmeasurement" data-cleared="false"' in page
    assert 'data-form="lesions.injection" data-cleared="none"' in page

    correct_l1_to(completed_visit, coordinator, width="9.5")
    page = client.get(url).content.decode()
    assert 'data-testid="form-sdv" data-cleared="true"' in page
    assert 'data-field="width_mm" data-cleared="true"' in page
    assert 'data-field="length_mm" data-cleared="false"' in page
    assert (
        'data-form="lesions.ultrasoundmeasurement" data-cleared="true"'
        in client.get(visit_url).content.decode()
    )

    sign_in(client, coordinator)
    assert client.get(url).status_code == 200
    assert client.post(url, {"action": "form"}).status_code == 403
