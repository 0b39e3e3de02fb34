from __future__ import annotations

import json

from fhir.resources.R4B.bundle import Bundle

from pro_measures import invitations
from pro_measures.models import Invitation
from tests.exports.conftest import job_bytes
from tests.participants.conftest import TODAY
from tests.pro_measures.answers import HAQ_WORKED


def test_fhir_bundle_holds_each_questionnaire_response_of_the_sites(
    participant, coordinator, monitor, monitor_b, run_export
):
    study_data = participant
    invitations.invitations_plan_for_participant(participant_id=study_data.pk)
    haq = Invitation.objects.get(participant=study_data, instrument_code="haq_di")
    response = invitations.response_enter_paper(
        actor=coordinator, invitation=haq, answers=dict(HAQ_WORKED), completed_on=TODAY
    )
    job = run_export(monitor, "fhir")
    assert job.status == "done", job.error
    raw = job_bytes(job)
    bundle = Bundle.model_validate_json(raw)  # the whole file reads back as a valid FHIR Bundle
    assert bundle.type == "collection"
    (entry,) = json.loads(raw)["entry"]
    assert entry["resource"]["resourceType"] == "QuestionnaireResponse"
    assert entry["resource"]["identifier"]["value"] == str(response.pk)
    assert entry["resource"]["subject"]["identifier"]["value"] == study_data.study_id
    assert b"Jane" not in raw and b"Doe" not in raw

    other_site = json.loads(job_bytes(run_export(monitor_b, "fhir")))
    assert other_site.get("entry") == []
