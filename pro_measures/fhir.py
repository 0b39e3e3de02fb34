"""FHIR R4 mapping of the questionnaires (DOMAIN.md s.5): each instrument as a Questionnaire, each
response as a QuestionnaireResponse, both validated by building the `fhir.resources` model.

`fhir.resources` 8 ships FHIR R5 at its root and the 4.x line as the `R4B` sub-package (4.3.0);
there is no separate R4 (4.0.1) package any more. The elements used here - Questionnaire.item
(linkId, text, type, required, answerOption with valueCoding / valueInteger, nested items),
copyright, QuestionnaireResponse (questionnaire canonical, status, authored, subject, items with
answers) - are the same in R4 and R4B, so what this module writes is valid R4.

Mapping of the item kinds (`pro_measures.instruments.ItemKind`):
- a section -> a `group` item whose items are the section's questions;
- choice (HAQ-DI, Cochin) -> `choice` with one answerOption.valueCoding per option; the coding's
  code is the stored value, and the ordinalValue extension carries it as the item's score;
- numeric rating scale 0-10 -> `integer` with answerOption.valueInteger 0..10 and the scale's
  ends as minValue / maxValue;
- visual analogue scale -> `integer` (millimetres from the left end of the line) with
  minValue / maxValue, the unit and the SDC `slider` control;
- yes / no -> `boolean`.
A section's lead-in ("Are you able to...") is a `display` item first in its group, and a
question's end anchors ("No pain" ... "Worst pain imaginable") are nested `display` items with
the SDC `lower` / `upper` item control.

A QuestionnaireResponse names its subject by the study id only (an identifier, never a name, an
e-mail or a date of birth).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from pro_measures.instruments import Instrument, Item, ItemKind, Section, instrument
from pro_measures.models import InvitationStatus, Response, ResponseSource

EXT_MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
EXT_MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"
EXT_UNIT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
EXT_ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
EXT_ITEM_CONTROL = "http://hl7.org/fhir/StructureDefinition/questionnaire-itemControl"
ITEM_CONTROL_SYSTEM = "http://hl7.org/fhir/questionnaire-item-control"
UCUM = "http://unitsofmeasure.org"

# QuestionnaireResponse.status (DOMAIN.md s.5: in-progress | completed | amended | entered-in-error
# | stopped): "stopped" is a partly answered questionnaire that can no longer be finished.
RESPONSE_STATUS = {
    InvitationStatus.COMPLETED: "completed",
    InvitationStatus.REVOKED: "stopped",
    InvitationStatus.EXPIRED: "stopped",
}


def _base_url() -> str:
    return settings.SITE_URL.rstrip("/")


def questionnaire_url(code: str) -> str:
    """The canonical URL of an instrument (version-independent; the version goes after `|`)."""
    return f"{_base_url()}/fhir/Questionnaire/{code}"


def answer_system(code: str) -> str:
    """The code system of an instrument's answer options (codes are the stored values)."""
    return f"{questionnaire_url(code)}/answers"


def study_id_system() -> str:
    return f"{_base_url()}/fhir/NamingSystem/study-id"


def response_source_system() -> str:
    return f"{_base_url()}/fhir/CodeSystem/response-source"


def group_link_id(section: Section) -> str:
    # A section's code can equal its only item's link id (pain NRS, SHAQ): linkIds must be unique.
    return f"section-{section.code}"


def _item_control(code: str) -> dict[str, Any]:
    return {
        "url": EXT_ITEM_CONTROL,
        "valueCodeableConcept": {"coding": [{"system": ITEM_CONTROL_SYSTEM, "code": code}]},
    }


def _anchors(item: Item) -> list[dict[str, Any]]:
    anchors = []
    for suffix, control, text in (("low", "lower", item.low_anchor), ("high", "upper", item.high_anchor)):
        if text:
            anchors.append(
                {
                    "linkId": f"{item.link_id}-{suffix}",
                    "type": "display",
                    "text": str(text),
                    "extension": [_item_control(control)],
                }
            )
    return anchors


def _question(definition: Instrument, item: Item) -> dict[str, Any]:
    question: dict[str, Any] = {"linkId": item.link_id, "text": str(item.text), "required": item.required}
    if item.kind == ItemKind.CHOICE:
        question["type"] = "choice"
        question["answerOption"] = [
            {
                "valueCoding": {
                    "system": answer_system(definition.code),
                    "code": str(option.value),
                    "display": str(option.label),
                    "extension": [{"url": EXT_ORDINAL_VALUE, "valueDecimal": option.value}],
                }
            }
            for option in item.options
        ]
    elif item.kind == ItemKind.BOOLEAN:
        question["type"] = "boolean"
    else:
        question["type"] = "integer"
        question["extension"] = [
            {"url": EXT_MIN_VALUE, "valueInteger": item.minimum},
            {"url": EXT_MAX_VALUE, "valueInteger": item.maximum},
        ]
        if item.kind == ItemKind.NUMERIC_SCALE:
            question["answerOption"] = [
                {"valueInteger": value} for value in range(item.minimum, item.maximum + 1)
            ]
        else:
            question["extension"].append(_item_control("slider"))
        if item.unit:
            question["extension"].append(
                {"url": EXT_UNIT, "valueCoding": {"system": UCUM, "code": item.unit, "display": item.unit}}
            )
    anchors = _anchors(item)
    if anchors:
        question["item"] = anchors
    return question


def questionnaire_resource(definition: Instrument) -> Questionnaire:
    """The instrument as a FHIR R4 Questionnaire (validated: raises pydantic's ValidationError if
    the mapping ever produces an invalid resource)."""
    description = [str(definition.introduction)] if definition.introduction else []
    description.append(f"Recall period: {definition.recall_period}.")
    groups = []
    for section in definition.sections:
        items = [_question(definition, item) for item in section.items]
        if section.help_text:
            # "Are you able to..." leads into every question of the section.
            help_item = {
                "linkId": f"{group_link_id(section)}-help",
                "type": "display",
                "text": str(section.help_text),
            }
            items.insert(0, help_item)
        groups.append(
            {"linkId": group_link_id(section), "type": "group", "text": str(section.title), "item": items}
        )
    return Questionnaire.model_validate(
        {
            "resourceType": "Questionnaire",
            "url": questionnaire_url(definition.code),
            "version": definition.version,
            "name": "".join(part.capitalize() for part in definition.code.split("_")),
            "title": str(definition.title),
            "status": "active",
            "subjectType": ["Patient"],
            "publisher": settings.STUDY_NAME,
            "description": " ".join(description),
            "copyright": str(definition.licence_note),
            "item": groups,
        }
    )


def _answer(definition: Instrument, item: Item, value: Any) -> dict[str, Any]:
    if item.kind == ItemKind.CHOICE:
        label = next(str(option.label) for option in item.options if option.value == value)
        return {
            "valueCoding": {"system": answer_system(definition.code), "code": str(value), "display": label}
        }
    if item.kind == ItemKind.BOOLEAN:
        return {"valueBoolean": bool(value)}
    return {"valueInteger": int(value)}


def response_status(response: Response, *, now=None) -> str:
    status = response.invitation.status_at(now or timezone.now())
    if response.submitted_at is not None:
        return "completed"
    return RESPONSE_STATUS.get(status, "in-progress")


def questionnaire_response_resource(response: Response, *, now=None) -> QuestionnaireResponse:
    """A response as a FHIR R4 QuestionnaireResponse: answered items only, nested in their
    sections as in the Questionnaire; the subject is the study id, nothing that names the person.
    Needs `response.invitation.participant` and `.visit` (select_related them for lists)."""
    invitation = response.invitation
    participant = invitation.participant
    definition = instrument(response.instrument_code)
    answers = response.answers or {}
    groups = []
    for section in definition.sections:
        answered = [
            {"linkId": item.link_id, "text": str(item.text), "answer": [_answer(definition, item, value)]}
            for item in section.items
            if (value := answers.get(item.link_id)) is not None
        ]
        if answered:
            groups.append({"linkId": group_link_id(section), "text": str(section.title), "item": answered})
    authored = response.submitted_at or response.updated_at
    source = ResponseSource(response.source)
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "meta": {
            "tag": [{"system": response_source_system(), "code": source.value, "display": str(source.label)}]
        },
        "identifier": {"system": f"{_base_url()}/fhir/QuestionnaireResponse", "value": str(response.pk)},
        "questionnaire": f"{questionnaire_url(response.instrument_code)}|{response.instrument_version}",
        "status": response_status(response, now=now),
        "subject": {"identifier": {"system": study_id_system(), "value": participant.study_id}},
        "encounter": {"display": f"{participant.study_id} {invitation.visit.code}"},
        "authored": authored.isoformat() if authored else None,
        "item": groups,
    }
    if not groups:
        del resource["item"]
    if authored is None:
        del resource["authored"]
    return QuestionnaireResponse.model_validate(resource)


def as_json(resource) -> str:
    """FHIR JSON (camelCase, no empty elements) of a validated resource."""
    return resource.model_dump_json()
