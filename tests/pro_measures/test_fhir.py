"""FHIR R4: every instrument exports as a valid Questionnaire, every response as a valid
QuestionnaireResponse whose items match the Questionnaire's, naming the subject by study id only;
the staff downloads are permission-checked and site-isolated."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from pro_measures import fhir, invitations
from pro_measures.instruments import INSTRUMENTS, ItemKind
from pro_measures.models import Invitation
from tests.participants.conftest import TODAY
from tests.pro_measures.answers import HAQ_WORKED, complete_answers
from trial.roles import Role

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)


@pytest.fixture
def planned(participant):
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    return {i.instrument_code: i for i in Invitation.objects.filter(participant=participant)}


def questions(resource: dict) -> dict[str, tuple[str, dict]]:
    """linkId -> (its group's linkId, the item) for every item below the groups."""
    return {
        item["linkId"]: (group["linkId"], item)
        for group in resource["item"]
        for item in group.get("item", [])
    }


def all_link_ids(items: list[dict]) -> list[str]:
    found = []
    for item in items:
        found.append(item["linkId"])
        found.extend(all_link_ids(item.get("item", [])))
    return found


@pytest.mark.parametrize("code", list(INSTRUMENTS))
def test_every_instrument_exports_as_a_valid_questionnaire(code):
    definition = INSTRUMENTS[code]
    resource = json.loads(fhir.as_json(fhir.questionnaire_resource(definition)))
    Questionnaire.model_validate(resource)  # what we wrote reads back as a valid resource
    assert resource["resourceType"] == "Questionnaire"
    assert resource["url"].endswith(f"/fhir/Questionnaire/{code}")
    assert (resource["version"], resource["status"]) == (definition.version, "active")
    assert resource["title"] == str(definition.title)
    assert resource["copyright"] == str(definition.licence_note)
    link_ids = all_link_ids(resource["item"])
    assert len(link_ids) == len(set(link_ids))  # linkIds unique in the whole questionnaire
    # Sections are groups, in order; every item of the definition is a question in its section.
    assert [g["type"] for g in resource["item"]] == ["group"] * len(definition.sections)
    by_link = questions(resource)
    expected_type = {
        ItemKind.CHOICE: "choice",
        ItemKind.NUMERIC_SCALE: "integer",
        ItemKind.VISUAL_ANALOGUE: "integer",
        ItemKind.BOOLEAN: "boolean",
    }
    for section in definition.sections:
        for item in section.items:
            group, question = by_link[item.link_id]
            assert group == f"section-{section.code}"
            assert question["type"] == expected_type[item.kind]
            assert question["text"] == str(item.text)
            if item.kind == ItemKind.CHOICE:
                codings = [option["valueCoding"] for option in question["answerOption"]]
                assert [c["code"] for c in codings] == [str(o.value) for o in item.options]
                assert [c["display"] for c in codings] == [str(o.label) for o in item.options]
            elif item.kind == ItemKind.NUMERIC_SCALE:
                values = [option["valueInteger"] for option in question["answerOption"]]
                assert values == list(range(item.minimum, item.maximum + 1))
            elif item.kind == ItemKind.VISUAL_ANALOGUE:
                extensions = {e["url"].rsplit("/", 1)[1]: e for e in question["extension"]}
                assert extensions["maxValue"]["valueInteger"] == item.maximum
                assert extensions["questionnaire-unit"]["valueCoding"]["code"] == "mm"


def test_a_completed_paper_response_round_trips(planned, coordinator):
    haq = planned["haq_di"]
    response = invitations.response_enter_paper(
        actor=coordinator, invitation=haq, answers=dict(HAQ_WORKED), completed_on=TODAY
    )
    exported = fhir.as_json(fhir.questionnaire_response_resource(response))
    resource = QuestionnaireResponse.model_validate_json(exported)  # reads back as valid FHIR
    data = json.loads(exported)
    definition = fhir.questionnaire_resource(INSTRUMENTS["haq_di"])
    assert data["status"] == "completed"
    assert data["questionnaire"] == f"{definition.url}|1.0"
    assert resource.authored == response.submitted_at
    assert data["subject"] == {"identifier": {"system": fhir.study_id_system(), "value": "A1-001"}}
    assert data["meta"]["tag"][0]["code"] == "paper"
    # Every answered item is there, under the same group as in the Questionnaire, with its value.
    questionnaire_items = questions(json.loads(fhir.as_json(definition)))
    answered = {}
    for group in data["item"]:
        for item in group["item"]:
            assert questionnaire_items[item["linkId"]][0] == group["linkId"]
            (answer,) = item["answer"]
            if "valueCoding" in answer:
                answered[item["linkId"]] = int(answer["valueCoding"]["code"])
            else:
                answered[item["linkId"]] = answer["valueBoolean"]
    assert answered == HAQ_WORKED


def test_scales_export_as_integers_and_a_partial_response_is_in_progress(planned, coordinator):
    shaq = planned["shaq_vas"]
    response = invitations.response_save_answers(
        invitation=shaq, answers={"shaq_pain": 90, "shaq_ulcers": 12}, now=NOW
    )
    data = json.loads(fhir.as_json(fhir.questionnaire_response_resource(response)))
    assert data["status"] == "in-progress"
    assert data["meta"]["tag"][0]["code"] == "patient"
    values = {item["linkId"]: item["answer"][0] for group in data["item"] for item in group["item"]}
    assert values == {"shaq_pain": {"valueInteger": 90}, "shaq_ulcers": {"valueInteger": 12}}
    # Revoked before it was finished: the partial answers are "stopped".
    invitations.invitation_revoke(actor=coordinator, invitation=shaq, reason="wrong visit")
    response.refresh_from_db()
    data = json.loads(fhir.as_json(fhir.questionnaire_response_resource(response)))
    assert data["status"] == "stopped"


def test_a_response_names_no_one(participant, planned, coordinator):
    pain = planned["pain_nrs"]
    response = invitations.response_enter_paper(
        actor=coordinator, invitation=pain, answers=complete_answers("pain_nrs", scale=6), completed_on=TODAY
    )
    exported = fhir.as_json(fhir.questionnaire_response_resource(response)).lower()
    assert participant.study_id.lower() in exported
    screening = participant.screening
    for identifying in (
        screening.first_name,
        screening.last_name,
        participant.email,
        screening.date_of_birth.isoformat(),
        coordinator.full_name,
        coordinator.email,
    ):
        assert identifying.lower() not in exported, identifying


# --- Downloads ------------------------------------------------------------------------------------------


def test_staff_download_a_questionnaire_definition(coordinator, signed_in):
    client = signed_in(coordinator)
    response = client.get(reverse("pro_measures:fhir-questionnaire", args=["cochin"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    assert 'filename="cochin-1.0.fhir.json"' in response["Content-Disposition"]
    resource = Questionnaire.model_validate_json(response.content)
    assert resource.title == "Cochin Hand Function Scale" and len(resource.item) == 5
    assert client.get(reverse("pro_measures:fhir-questionnaire", args=["no_such_thing"])).status_code == 404


def test_response_download_is_checked_by_role_and_site(
    participant, planned, coordinator, make_user, site_a, site_b, signed_in
):
    pain = planned["pain_nrs"]
    url = reverse("pro_measures:fhir-questionnaire-response", args=[pain.pk])
    assert signed_in(coordinator).get(url).status_code == 404  # no response yet
    invitations.response_enter_paper(
        actor=coordinator, invitation=pain, answers={"pain": 3}, completed_on=TODAY
    )
    response = signed_in(coordinator).get(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert QuestionnaireResponse.model_validate_json(response.content).status == "completed"
    assert signed_in(make_user(role=Role.MONITOR, sites=[site_a])).get(url).status_code == 200
    assert signed_in(make_user(role=Role.COORDINATOR, sites=[site_b])).get(url).status_code == 404
    administrator = make_user(role=Role.ADMINISTRATOR, sites=[site_a])
    assert signed_in(administrator).get(url).status_code == 403
    definition_url = reverse("pro_measures:fhir-questionnaire", args=["pain_nrs"])
    assert signed_in(administrator).get(definition_url).status_code == 403
