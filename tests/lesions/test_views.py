"""The lesion pages: the registry, the visit's measurement + injection table and the change from
baseline, as a coordinator, an investigator, a monitor or someone from another site sees them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.html import Element, parse_html
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lesions import services as lesion_services
from lesions.models import Injection, Lesion, UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import safety
from tests.conftest import sign_in
from tests.form_data import browser_data
from tests.lesions.conftest import TODAY, injection, measurement
from trial.audit import event_model_for
from trial.protocol import PROTOCOL
from trial.roles import Role

pytestmark = pytest.mark.django_db


# --- Helpers: read the page as a browser would, and post it back -----------------------------


def _walk(node):
    yield node
    for child in getattr(node, "children", []):
        if isinstance(child, Element):
            yield from _walk(child)


def _text(node) -> str:
    if isinstance(node, str):
        return node
    return " ".join(_text(child) for child in node.children)


def element(response, element_id: str) -> Element:
    root = parse_html(response.content.decode())
    for node in _walk(root):
        if isinstance(node, Element) and dict(node.attributes).get("id") == element_id:
            return node
    raise AssertionError(f"no element #{element_id} on the page")


def text_of(response, element_id: str) -> str:
    return " ".join(_text(element(response, element_id)).split())


def has_element(response, element_id: str) -> bool:
    try:
        element(response, element_id)
    except AssertionError:
        return False
    return True


def input_value(response, name: str) -> str | None:
    """What the browser would show in the input or select called `name`."""
    root = parse_html(response.content.decode())
    for node in _walk(root):
        if not isinstance(node, Element):
            continue
        attrs = dict(node.attributes)
        if attrs.get("name") != name:
            continue
        if node.name == "select":
            for option in _walk(node):
                if isinstance(option, Element) and "selected" in dict(option.attributes):
                    return dict(option.attributes).get("value")
            return None
        return attrs.get("value")
    raise AssertionError(f"no input {name} on the page")


def page_data(response) -> dict:
    """The table's form data as the browser would send it unchanged."""
    table = response.context["table"]
    return browser_data(table.formset.management_form, table.header, *table.forms)


MEASURED = {
    "length_mm": "10.0",
    "width_mm": "8.0",
    "depth_mm": "5.0",
    "doppler_signal": "none",
    "operator": "Sam Sonographer",
    "device": "Demo US-1",
}
INJECTED = {"volume_ml": "0.50", "needle_gauge": "27", "ultrasound_guided": "on", "immediate_pain": "3"}


def fill(data: dict, index: int, **values) -> dict:
    for name, value in values.items():
        key = f"rows-{index}-{name}"
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


# --- Fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def baseline(participant):
    return participant.visits.get(code="W0")


@pytest.fixture
def table_url(baseline):
    return reverse("lesions:visit-table", args=[baseline.pk])


@pytest.fixture
def negative_test(participant, coordinator):
    return safety.pregnancy_test_record(
        actor=coordinator, participant=participant, test_type="urine_hcg", test_date=TODAY, result="negative"
    )


@pytest.fixture
def as_coordinator(signed_in, coordinator):
    return signed_in(coordinator)


def add_lesions(participant, coordinator, count: int, start: int) -> list[Lesion]:
    return [
        lesion_services.lesion_add(
            actor=coordinator,
            participant=participant,
            label=f"L{n}",
            anatomical_site="trunk",
            laterality="midline",
            first_seen_on=dt.date(2026, 9, 1),
        )
        for n in range(start, start + count)
    ]


# --- Access by role and site ------------------------------------------------------------------


def test_monitor_sees_the_table_read_only_and_cannot_post(
    make_user, site_a, signed_in, lesions, baseline, table_url, coordinator, negative_test
):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("12.0"))]
    )
    client = signed_in(make_user(role=Role.MONITOR, sites=[site_a]))
    response = client.get(table_url)
    assert response.status_code == 200
    assert input_value(response, "rows-0-length_mm") == "12.0"
    assert "disabled" in dict(element(response, "id_rows-0-length_mm").attributes)
    assert b"Save the table" not in response.content

    data = page_data(response)
    fill(data, 1, **MEASURED)
    assert client.post(table_url, data).status_code == 403
    assert UltrasoundMeasurement.objects.count() == 1


def test_monitor_sees_the_registry_without_edit_links(make_user, site_a, signed_in, participant, lesions):
    client = signed_in(make_user(role=Role.MONITOR, sites=[site_a]))
    response = client.get(reverse("lesions:lesion-list", args=[participant.pk]))
    assert response.status_code == 200
    assert "L1" in text_of(response, "lesion-registry")
    assert b"Add a lesion" not in response.content
    assert client.get(reverse("lesions:lesion-add", args=[participant.pk])).status_code == 403
    assert client.get(reverse("lesions:lesion-edit", args=[lesions[0].pk])).status_code == 403


def test_another_sites_coordinator_gets_not_found_everywhere(
    make_user, site_b, signed_in, participant, lesions, table_url
):
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_b]))
    for url in (
        table_url,
        reverse("lesions:lesion-list", args=[participant.pk]),
        reverse("lesions:lesion-add", args=[participant.pk]),
        reverse("lesions:lesion-edit", args=[lesions[0].pk]),
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(table_url, {}).status_code == 404


def test_a_role_without_lesion_permissions_is_forbidden(make_user, site_a, signed_in, table_url):
    client = signed_in(make_user(role=Role.ADMINISTRATOR, sites=[site_a]))
    assert client.get(table_url).status_code == 403


# --- The visit table --------------------------------------------------------------------------


def test_a_three_lesion_injection_visit_is_saved_in_one_post(
    as_coordinator, lesions, table_url, negative_test
):
    response = as_coordinator.get(table_url)
    assert [form.row.lesion.label for form in response.context["forms"]] == ["L1", "L2", "L3"]
    assert input_value(response, "rows-0-concentration_mg_per_ml") == "250"  # the protocol's default
    data = page_data(response)
    for index in range(3):
        fill(data, index, **MEASURED, **INJECTED)

    response = as_coordinator.post(table_url, data, follow=True)

    assert response.redirect_chain == [(table_url, 302)]
    assert UltrasoundMeasurement.objects.count() == 3 and Injection.objects.count() == 3
    assert "3 measurement(s) and 3 injection(s)" in response.content.decode()
    # Computed values are shown, never typed: pi/6 x 10 x 8 x 5 = 209.4 mm3; 0.5 mL x 250 = 125 mg.
    row = response.context["forms"][0]
    assert row.row.measurement.volume_mm3 == Decimal("209.4")
    assert "volume_mm3" not in row.fields and "dose_mg" not in row.fields
    content = response.content.decode()
    assert content.count(">209.4<") == 3 and content.count(">125.00<") == 3
    assert "Saved: 375.00 mg STS of at most 2500 mg" in text_of(response, "session-total")
    assert "DEMO VALUES" in text_of(response, "dose-limits")
    # Rows saved before: the reason for change now appears.
    assert "reason" in response.context["table"].header.fields


def test_a_pain_score_of_zero_is_an_answer(as_coordinator, lesions, table_url, negative_test):
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **{**INJECTED, "immediate_pain": "0"})
    as_coordinator.post(table_url, data)
    assert Injection.objects.get().immediate_pain == 0


def test_operator_and_device_given_once_apply_to_every_row(as_coordinator, lesions, table_url):
    data = page_data(as_coordinator.get(table_url))
    data.update({"table-operator": "Olga Operator", "table-device": "Demo US-2"})
    for index in range(3):
        fill(data, index, **{**MEASURED, "operator": "", "device": ""})
    fill(data, 2, operator="Row Owner")  # a row's own entry wins
    as_coordinator.post(table_url, data)
    operators = dict(UltrasoundMeasurement.objects.values_list("lesion__label", "operator"))
    assert operators == {"L1": "Olga Operator", "L2": "Olga Operator", "L3": "Row Owner"}
    assert set(UltrasoundMeasurement.objects.values_list("device", flat=True)) == {"Demo US-2"}


def test_depth_not_measurable_needs_the_reason_and_gives_no_volume(as_coordinator, lesions, table_url):
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **{**MEASURED, "depth_mm": ""})
    response = as_coordinator.post(table_url, data)
    assert "Enter the depth, or choose why it is not measurable." in text_of(
        response, "id_rows-0-depth_mm_error"
    )
    assert not UltrasoundMeasurement.objects.exists()

    fill(data, 0, depth_not_measurable_reason="shadowing", posterior_shadowing="on")
    response = as_coordinator.post(table_url, data, follow=True)
    saved = UltrasoundMeasurement.objects.get()
    assert saved.volume_mm3 is None and saved.depth_not_measurable_reason == "shadowing"


def test_over_the_per_lesion_volume_limit_the_message_is_on_that_row_and_input_is_kept(
    as_coordinator, lesions, table_url, negative_test
):
    limit = PROTOCOL.dosing.max_volume_per_lesion_ml
    data = page_data(as_coordinator.get(table_url))
    for index in range(3):
        fill(data, index, **MEASURED, **INJECTED)
    fill(data, 1, volume_ml=str(limit + Decimal("0.5")), length_mm="11.5")

    response = as_coordinator.post(table_url, data)

    assert response.status_code == 200
    message = text_of(response, "rows-1-errors")
    assert f"more than the protocol's limit of {limit} mL per lesion" in message
    assert not has_element(response, "rows-0-errors") and not has_element(response, "rows-2-errors")
    assert "L2" in text_of(response, "error-summary")
    # Everything typed is still there, nothing is saved.
    assert input_value(response, "rows-1-volume_ml") == "2.5"
    assert input_value(response, "rows-1-length_mm") == "11.5"
    assert input_value(response, "rows-0-volume_ml") == "0.50"
    assert not UltrasoundMeasurement.objects.exists() and not Injection.objects.exists()
    # The row's inputs point at the row's message.
    described = dict(element(response, "id_rows-1-volume_ml").attributes)["aria-describedby"]
    assert "rows-1-errors" in described.split()


def test_the_session_dose_cap_refuses_the_whole_table_with_the_message_on_top(
    as_coordinator, participant, coordinator, lesions, table_url, negative_test
):
    add_lesions(participant, coordinator, 3, start=4)
    per_lesion = str(PROTOCOL.dosing.max_volume_per_lesion_ml)  # 6 x 2.0 mL x 250 mg/mL = 3000 mg
    data = page_data(as_coordinator.get(table_url))
    for index in range(6):
        fill(data, index, **{**INJECTED, "volume_ml": per_lesion})

    response = as_coordinator.post(table_url, data)

    summary = text_of(response, "error-summary")
    assert "3000 mg" in summary and "at most 2500 mg" in summary
    assert not Injection.objects.exists()
    assert input_value(response, "rows-5-volume_ml") == per_lesion


def test_pregnancy_gate_is_shown_before_typing_and_refuses_injections(
    as_coordinator, participant, coordinator, lesions, table_url
):
    response = as_coordinator.get(table_url)
    assert "No injection without a negative pregnancy test" in text_of(response, "pregnancy-gate")

    data = page_data(response)
    fill(data, 0, **MEASURED, **INJECTED)
    response = as_coordinator.post(table_url, data)
    assert "negative pregnancy test" in text_of(response, "rows-0-errors")
    assert not UltrasoundMeasurement.objects.exists()  # all or nothing

    safety.pregnancy_test_record(
        actor=coordinator, participant=participant, test_type="urine_hcg", test_date=TODAY, result="negative"
    )
    assert not has_element(as_coordinator.get(table_url), "pregnancy-gate")


def test_a_follow_up_visit_has_no_injection_columns(as_coordinator, participant, lesions):
    follow_up = participant.visits.get(code="W16")
    response = as_coordinator.get(reverse("lesions:visit-table", args=[follow_up.pk]))
    assert response.context["injection_headers"] == []
    assert b"volume_ml" not in response.content and not has_element(response, "pregnancy-gate")
    assert not has_element(response, "dose-limits") and not has_element(response, "session-total")
    assert has_element(response, "id_rows-0-length_mm")


def test_a_missed_visit_is_read_only(as_coordinator, coordinator, participant, lesions):
    from participants.visits import visit_miss

    missed = visit_miss(actor=coordinator, visit=participant.visits.get(code="W4"), reason="travelling")
    url = reverse("lesions:visit-table", args=[missed.pk])
    response = as_coordinator.get(url)
    assert "recorded as missed" in response.content.decode()
    assert "disabled" in dict(element(response, "id_rows-0-length_mm").attributes)
    data = page_data(response)
    fill(data, 0, **MEASURED)
    response = as_coordinator.post(url, data, follow=True)
    assert "recorded as missed" in response.content.decode()
    assert not UltrasoundMeasurement.objects.exists()


def test_editing_a_saved_row_asks_for_a_reason(as_coordinator, lesions, baseline, table_url, coordinator):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, length_mm="10.5")

    response = as_coordinator.post(table_url, data)
    assert "Give a reason for changing rows saved before (L1)" in text_of(response, "id_table-reason_error")
    assert input_value(response, "rows-0-length_mm") == "10.5"
    assert UltrasoundMeasurement.objects.get().length_mm == Decimal("10.0")

    data["table-reason"] = "re-measured on the stored image"
    as_coordinator.post(table_url, data)
    saved = UltrasoundMeasurement.objects.get()
    assert saved.length_mm == Decimal("10.5")
    last = (
        event_model_for(UltrasoundMeasurement).objects.filter(pgh_obj_id=saved.pk).order_by("pgh_id").last()
    )
    assert last.pgh_context["reason"] == "re-measured on the stored image"


def test_saving_unchanged_saved_rows_with_a_new_row_needs_no_reason(
    as_coordinator, lesions, baseline, table_url, coordinator
):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement())]
    )
    data = page_data(as_coordinator.get(table_url))
    fill(data, 1, **MEASURED)
    response = as_coordinator.post(table_url, data, follow=True)
    assert "1 measurement(s)" in response.content.decode()
    assert UltrasoundMeasurement.objects.count() == 2


def test_second_of_two_people_saving_the_same_row_gets_a_conflict_and_keeps_their_input(
    as_coordinator, investigator, lesions, baseline, table_url, coordinator
):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    other = sign_in(Client(), investigator)
    first = page_data(as_coordinator.get(table_url))
    second = page_data(other.get(table_url))

    fill(first, 0, length_mm="11.0")
    first["table-reason"] = "first reader"
    as_coordinator.post(table_url, first)
    fill(second, 0, length_mm="12.0")
    second["table-reason"] = "second reader"

    response = other.post(table_url, second)

    assert response.status_code == 200
    row_message = text_of(response, "rows-0-errors")
    assert "Someone else saved this record after you opened it" in row_message
    assert "Saved now by someone else: 11.0 × 8.0 × 5.0 mm" in row_message
    assert input_value(response, "rows-0-length_mm") == "12.0"
    assert UltrasoundMeasurement.objects.get().length_mm == Decimal("11.0")  # no lost update

    # Having seen the current values, saving again writes theirs, on purpose.
    response = other.post(table_url, page_data(response), follow=True)
    assert UltrasoundMeasurement.objects.get().length_mm == Decimal("12.0")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("length_mm", "ten", "Enter a number."),
        ("length_mm", "1e309", "less than or equal to 200"),
        ("length_mm", "-1", "greater than or equal to 0.1"),
        ("length_mm", "NaN", "Enter a number."),
        ("width_mm", "Infinity", "Enter a number."),
        ("depth_mm", "250", "less than or equal to 200"),
        ("volume_ml", "-0.5", "greater than or equal to 0.01"),
        ("volume_ml", "1e309", "Ensure that there are no more than"),
        ("immediate_pain", "11", "less than or equal to 10"),
        ("immediate_pain", "3.5", "Enter a whole number."),
        ("needle_gauge", "99", "Select a valid choice."),
        ("concentration_mg_per_ml", "999", "Select a valid choice."),
        ("doppler_signal", "<b>", "Select a valid choice."),
    ],
)
def test_bad_input_is_a_field_error_never_a_server_error(
    as_coordinator, lesions, table_url, negative_test, name, value, message
):
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **MEASURED, **INJECTED)
    fill(data, 0, **{name: value})
    response = as_coordinator.post(table_url, data)
    assert response.status_code == 200
    assert message in text_of(response, f"id_rows-0-{name}_error")
    assert dict(element(response, f"id_rows-0-{name}").attributes).get("aria-invalid") == "true"
    assert not UltrasoundMeasurement.objects.exists() and not Injection.objects.exists()


def label_for(response, input_id: str) -> str:
    for node in _walk(parse_html(response.content.decode())):
        if (
            isinstance(node, Element)
            and node.name == "label"
            and dict(node.attributes).get("for") == input_id
        ):
            return " ".join(_text(node).split())
    raise AssertionError(f"no label for #{input_id} on the page")


def row_inputs(response, index: int) -> list[dict]:
    """The attributes of the inputs and selects a person fills in row `index`."""
    return [
        attrs
        for node in _walk(parse_html(response.content.decode()))
        if isinstance(node, Element)
        and node.name in ("input", "select")
        and (attrs := dict(node.attributes)).get("name", "").startswith(f"rows-{index}-")
        and attrs.get("type") != "hidden"
    ]


def test_every_input_is_labelled_with_its_lesion_for_screen_readers(
    as_coordinator, lesions, table_url, negative_test
):
    response = as_coordinator.get(table_url)
    page = response.content.decode()
    for index, label in enumerate(["L1", "L2", "L3"]):
        assert label_for(response, f"id_rows-{index}-length_mm") == f"{label} length (mm)"
        assert label_for(response, f"id_rows-{index}-doppler_signal") == f"{label} Doppler signal"
        assert label_for(response, f"id_rows-{index}-volume_ml") == f"{label} volume injected (mL)"
        assert (
            label_for(response, f"id_rows-{index}-ultrasound_guided")
            == f"{label} ultrasound guidance confirmed"
        )
        assert label_for(response, f"id_rows-{index}-complication_detail") == f"{label} complication details"
        assert f'<legend class="visually-hidden">{label} immediate complications</legend>' in page


def test_only_the_inputs_in_error_point_at_their_errors(as_coordinator, lesions, table_url, negative_test):
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **MEASURED, lesion=str(lesions[2].pk))  # a row error: the row is someone else's
    fill(data, 1, **{**MEASURED, "width_mm": "abc"})  # a field error
    fill(data, 2, **MEASURED)

    response = as_coordinator.post(table_url, data)

    assert response.status_code == 200
    # Every input of the refused row points at the row's message, checkboxes included.
    for attrs in row_inputs(response, 0):
        assert attrs.get("aria-describedby") == "rows-0-errors", attrs["name"]
        assert "is-invalid" not in attrs.get("class", "")
    width = dict(element(response, "id_rows-1-width_mm").attributes)
    assert width["aria-describedby"] == "id_rows-1-width_mm_error"
    assert "is-invalid" in width["class"].split() and width["aria-invalid"] == "true"
    others = [attrs for attrs in row_inputs(response, 1) if attrs["name"] != "rows-1-width_mm"]
    others += row_inputs(response, 2)
    assert others
    for attrs in others:
        assert "aria-describedby" not in attrs and "aria-invalid" not in attrs, attrs["name"]
        assert "is-invalid" not in attrs.get("class", ""), attrs["name"]
    # The next page shown starts clean: nothing of this refusal stays with the table's inputs.
    response = as_coordinator.get(table_url)
    for index in range(3):
        for attrs in row_inputs(response, index):
            assert "aria-describedby" not in attrs and "is-invalid" not in attrs.get("class", "")


def test_a_read_only_table_disables_every_input_and_an_editable_one_none(
    make_user, site_a, as_coordinator, lesions, table_url, negative_test
):
    monitor = sign_in(Client(), make_user(role=Role.MONITOR, sites=[site_a]))
    for index in range(3):
        inputs = row_inputs(monitor.get(table_url), index)
        assert inputs and all("disabled" in attrs for attrs in inputs)
    response = as_coordinator.get(table_url)
    for index in range(3):
        assert not any("disabled" in attrs for attrs in row_inputs(response, index))


def test_tampered_row_data_is_refused_on_the_row(as_coordinator, lesions, table_url):
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **MEASURED, lesion=str(lesions[2].pk), measurement_version="abc")
    response = as_coordinator.post(table_url, data)
    assert response.status_code == 200
    assert "Enter a whole number." in text_of(response, "rows-0-errors")
    assert not UltrasoundMeasurement.objects.exists()


def test_html_in_text_fields_is_shown_escaped(as_coordinator, lesions, table_url):
    script = '<script>alert("x")</script>'
    data = page_data(as_coordinator.get(table_url))
    fill(data, 0, **{**MEASURED, "operator": script, "length_mm": "ten"})
    response = as_coordinator.post(table_url, data)  # refused: shown again with the input kept
    assert script.encode() not in response.content
    assert input_value(response, "rows-0-operator") == script  # the parser unescapes the attribute

    fill(data, 0, length_mm="10.0")
    response = as_coordinator.post(table_url, data, follow=True)
    assert UltrasoundMeasurement.objects.get().operator == script
    assert script.encode() not in response.content
    assert b"&lt;script&gt;" in response.content


def test_a_large_change_since_the_last_visit_is_a_warning_shown_after_saving(
    as_coordinator, participant, lesions, baseline, coordinator
):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    w4_url = reverse("lesions:visit-table", args=[participant.visits.get(code="W4").pk])
    response = as_coordinator.get(w4_url)
    assert "Last (W0): 10.0 × 8.0 × 5.0 mm" in response.content.decode()
    data = page_data(response)
    fill(data, 0, **{**MEASURED, "length_mm": "16.0"})
    response = as_coordinator.post(w4_url, data, follow=True)
    assert UltrasoundMeasurement.objects.filter(visit__code="W4").exists()
    assert "more than 50% since W0" in response.content.decode()


def test_an_empty_table_saves_nothing(as_coordinator, lesions, table_url):
    response = as_coordinator.post(table_url, page_data(as_coordinator.get(table_url)), follow=True)
    assert "Nothing to save" in response.content.decode()
    assert not UltrasoundMeasurement.objects.exists()


def test_the_table_is_one_query_budget_whatever_the_number_of_lesions(
    as_coordinator, participant, coordinator, lesions, baseline, table_url, negative_test
):
    def save_all(rows):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            rows=[
                LesionRow(lesion, measurement=measurement(), injection=injection("0.50")) for lesion in rows
            ],
        )

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = as_coordinator.get(table_url)
        assert response.status_code == 200
        return len(captured)

    save_all(lesions)
    with_three = queries()
    save_all(add_lesions(participant, coordinator, 7, start=4))
    assert len(as_coordinator.get(table_url).context["forms"]) == 10
    assert queries() == with_three


# Saving the table (issue #9): the session, the user with their permissions, and the second
# factor of the request; then, in one transaction, the visit row-locked (only if the user may see
# its site: no separate site check) with its participant and lock state, the table's lesions with
# their records and last earlier measurements read once under that lock (the table is validated
# against them, the service saves against them and warns from them), and the one UPDATE of the
# changed row. Here the transaction is a savepoint inside the test's (2 more); on the site the
# request also reads the chosen site: 7 statements (bench/pages.py measures them), where 10 read
# the visit and the lesions twice (before and under the lock) and the earlier measurements once
# more, and 38 were per-row lookups, constraint checks and reads of the same rows twice.
TABLE_SAVE_STATEMENTS = 8


def test_saving_the_table_is_one_query_budget_whatever_the_number_of_lesions(
    as_coordinator, participant, coordinator, baseline, table_url, negative_test
):
    def save_all(rows):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            rows=[
                LesionRow(lesion, measurement=measurement(), injection=injection("0.50")) for lesion in rows
            ],
        )

    events = event_model_for(UltrasoundMeasurement).objects

    def edit_first_row(length: str) -> int:
        """Statements of the POST that changes L1's length, as the bench does."""
        data = page_data(as_coordinator.get(table_url))
        fill(data, 0, length_mm=length)
        data["table-reason"] = "re-measured on the stored image"
        before = events.count()
        with CaptureQueriesContext(connection) as captured:
            response = as_coordinator.post(table_url, data)
        assert response.status_code == 302, response.content.decode()[:2000]
        assert UltrasoundMeasurement.objects.get(lesion__label="L1").length_mm == Decimal(length)
        assert events.count() == before + 1  # the changed row only: unchanged rows are not written
        return len(captured)

    save_all(add_lesions(participant, coordinator, 2, start=1))
    with_two = edit_first_row("10.5")
    save_all(add_lesions(participant, coordinator, 4, start=3))
    assert len(as_coordinator.get(table_url).context["forms"]) == 6
    with_six = edit_first_row("11.0")
    assert with_two == with_six == TABLE_SAVE_STATEMENTS


# --- The lesion registry and the change from baseline -----------------------------------------


def test_add_a_finger_lesion_explains_what_is_missing(as_coordinator, participant, lesions):
    url = reverse("lesions:lesion-add", args=[participant.pk])
    response = as_coordinator.get(url)
    assert response.context["form"].initial["label"] == "L4"
    values = {
        "label": "L4",
        "anatomical_site": "hand_digit",
        "laterality": "left",
        "first_seen_on": "2026-10-01",
    }

    response = as_coordinator.post(url, values)
    errors = response.context["form"].errors
    assert "Choose the finger or thumb" in errors["digit"][0]
    assert "Choose the phalanx" in errors["phalanx"][0]

    response = as_coordinator.post(url, {**values, "digit": "thumb", "phalanx": "middle"})
    assert "The thumb has no middle phalanx" in response.context["form"].errors["phalanx"][0]

    response = as_coordinator.post(url, {**values, "anatomical_site": "knee", "digit": "thumb"})
    assert "Only for 'Hand: finger or thumb'" in response.context["form"].errors["digit"][0]

    response = as_coordinator.post(url, {**values, "label": "l1", "digit": "thumb", "phalanx": "distal"})
    assert "already used" in response.context["form"].errors["label"][0]

    response = as_coordinator.post(url, {**values, "digit": "thumb", "phalanx": "distal"})
    assert response.status_code == 302
    lesion = Lesion.objects.get(label="L4")
    assert lesion.location == "Left thumb distal phalanx (fingertip)"


def test_add_from_the_visit_table_returns_to_it(as_coordinator, participant, lesions, table_url):
    url = reverse("lesions:lesion-add", args=[participant.pk]) + f"?next={table_url}"
    values = {
        "label": "L4",
        "anatomical_site": "trunk",
        "laterality": "midline",
        "first_seen_on": "2026-11-03",
    }
    response = as_coordinator.post(url, {**values, "next": table_url})
    assert response.url == table_url
    evil = as_coordinator.post(url, {**values, "label": "L5", "next": "https://evil.example/"})
    assert evil.url == reverse("lesions:lesion-list", args=[participant.pk])


def test_resolving_a_lesion_keeps_it_in_the_registry_with_the_date(
    as_coordinator, participant, lesions, table_url
):
    url = reverse("lesions:lesion-edit", args=[lesions[1].pk])
    values = {
        **{k: v for k, v in as_coordinator.get(url).context["form"].initial.items() if v not in (None, "")}
    }
    values.update({"is_target": "", "resolved_on": "2026-11-01"})
    response = as_coordinator.post(url, values)
    assert "reason" in response.context["form"].errors  # no reason, no change
    assert Lesion.objects.get(pk=lesions[1].pk).resolved_on is None

    values["reason"] = "no longer seen on ultrasound"
    response = as_coordinator.post(url, values, follow=True)
    assert "L2 recorded as resolved on 2026-11-01" in response.content.decode()
    assert "Resolved on 2026-11-01" in text_of(response, "lesion-registry")
    # Resolved before the visit day: no longer a row of the table.
    labels = [form.row.lesion.label for form in as_coordinator.get(table_url).context["forms"]]
    assert labels == ["L1", "L3"]


def test_lesion_page_shows_change_from_baseline(as_coordinator, participant, lesions, coordinator):
    w0, w4 = participant.visits.get(code="W0"), participant.visits.get(code="W4")
    l1, _, l3 = lesions
    visit_lesions_save(
        actor=coordinator,
        visit=w0,
        rows=[
            LesionRow(l1, measurement=measurement("10.0")),
            LesionRow(l3, measurement=measurement("20.0", "10.0")),
        ],
    )
    visit_lesions_save(
        actor=coordinator,
        visit=w4,
        rows=[
            LesionRow(l1, measurement=measurement("8.0")),
            LesionRow(l3, measurement=measurement("15.0", "10.0")),
        ],
    )
    response = as_coordinator.get(reverse("lesions:lesion-list", args=[participant.pk]))
    per_lesion = text_of(response, "outcome-per-lesion")
    assert "L1 W0 10.0 baseline baseline" in per_lesion
    assert "W4 8.0 -2.0 -20.0%" in per_lesion
    totals = text_of(response, "outcome-totals")  # L3 is the target lesion
    assert "W4 15.0 -5.0 -25.0%" in totals


def test_lesion_page_query_count_does_not_grow(as_coordinator, participant, coordinator, lesions, baseline):
    url = reverse("lesions:lesion-list", args=[participant.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_coordinator.get(url).status_code == 200
        return len(captured)

    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement()) for lesion in lesions],
    )
    with_three = queries()
    more = add_lesions(participant, coordinator, 7, start=4)
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement()) for lesion in more],
    )
    assert queries() == with_three


def test_the_last_earlier_measurement_shown_says_when_its_depth_was_not_measurable(
    as_coordinator, participant, lesions, baseline, coordinator
):
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesions[0], measurement=measurement("12.5", "8.0", depth=None))],
    )
    w4_url = reverse("lesions:visit-table", args=[participant.visits.get(code="W4").pk])
    page = as_coordinator.get(w4_url).content.decode()
    assert "Last (W0): 12.5 × 8.0 × depth not measurable mm" in page
    assert page.count("Last (") == 1  # L2 and L3 were not measured before
