"""Issue #10 item 3, bad input: Hypothesis drives every data-entry form through its real view.

Each form starts from what the browser would post (the page's own form data, plus the few values
a user must type on a blank form); Hypothesis replaces up to three fields with hostile values
(see tests/reliability/hostile.py). Every submission is either saved with exactly one audit event
per changed record, its free text stored as typed, or refused with the problem named and nothing
written; never a 500. The database is rolled back after each example.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django import forms
from django.test import Client
from django.urls import reverse
from hypothesis import given

from pro_measures import invitations
from pro_measures.models import Invitation
from tests.conftest import sign_in
from tests.data_management.conftest import (  # noqa: F401 - shared fixtures
    baseline,
    consent_v1,
    consented,
    coordinator,
    data_manager,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    monitor,
    participant,
    screen,
)
from tests.factories import ELIGIBLE_ANSWERS
from tests.form_data import browser_data
from tests.reliability.hostile import FUZZ, context_values, mutations, submit, text_mutations
from trial.data_management import services as dm_services
from trial.roles import Role


@dataclass
class Case:
    client: Client
    url: str
    data: dict
    text_fields: tuple[str, ...] = ()
    # Values the user would type on a blank form (or the reason an edit asks for).
    typed: dict = field(default_factory=dict)

    def fields(self) -> list[str]:
        return [name for name in self.data if name != "csrfmiddlewaretoken"]


def page_forms(response) -> list[forms.BaseForm]:
    """The bound forms a page shows (formsets' management forms included)."""
    found = []
    for value in context_values(response):
        if isinstance(value, forms.BaseForm):
            found.append(value)
        elif isinstance(value, forms.BaseFormSet):
            found.extend([value.management_form, *value.forms])
        elif hasattr(value, "formset") and hasattr(value, "header"):  # the visit's lesion table
            found.extend([value.formset.management_form, value.header, *value.forms])
    unique = []
    for form in found:
        if all(form is not seen for seen in unique):
            unique.append(form)
    return unique


def free_text_fields(*bound_forms: forms.BaseForm) -> list[str]:
    """The fields where a person types words: stored as typed, or refused."""
    return [
        bound.html_name
        for form in bound_forms
        for bound in form
        if type(bound.field) is forms.CharField and not bound.field.disabled and not bound.is_hidden
    ]


def staff_case(client, url, typed=None, *, conditional=()) -> Case:
    """The page's form as the browser posts it, with `typed` filled in. Free text in a
    `conditional` field is kept only with some answer to another field, so it is not checked."""
    response = client.get(url)
    assert response.status_code == 200, url
    shown = page_forms(response)
    data = browser_data(*shown) | (typed or {})
    text = tuple(name for name in free_text_fields(*shown) if name not in conditional)
    return Case(client=client, url=url, data=data, text_fields=text)


# --- The forms --------------------------------------------------------------------------------
# Each builder takes the test's `request` (for fixtures) and returns the Case to fuzz.

REASON = {"reason": "Corrected after source review"}


def screening_create(request):
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        "first_name": "Jane",
        "last_name": "Doe",
        "date_of_birth": "1970-05-17",
        "sex": "female",
        "medical_record_number": "MRN-1",
        "screening_date": "2026-11-03",
    }
    return staff_case(client, reverse("participants:screening-create"), typed)


def screening_edit(request):
    screening = request.getfixturevalue("screen")()
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("participants:screening-edit", args=[screening.pk])
    return staff_case(client, url, REASON | {"first_name": "Janet"})


def eligibility_edit(request):
    screening = request.getfixturevalue("screen")()
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        name: (value.isoformat() if isinstance(value, dt.date) else str(value))
        for name, value in ELIGIBLE_ANSWERS.items()
    }
    return staff_case(client, reverse("participants:eligibility-edit", args=[screening.pk]), typed)


def consent_create(request):
    screening = request.getfixturevalue("eligible_screening")
    document = request.getfixturevalue("consent_v1")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        "document": str(document.pk),
        "consented_at": "2026-11-03T09:30",
        "participant_signature": "Jane Doe",
        "attestation": "on",
        "copy_given": "on",
    }
    url = reverse("participants:consent-create", args=[screening.pk])
    return staff_case(client, url, typed)


def participant_enroll(request):
    screening = request.getfixturevalue("consented")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        "enrolled_on": "2026-11-03",
        "email": "jane.doe@example.org",
        "preferred_language": "en",
        "time_zone": "Europe/Paris",
    }
    return staff_case(client, reverse("participants:participant-enroll", args=[screening.pk]), typed)


def screening_decline(request):
    screening = request.getfixturevalue("eligible_screening")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("participants:screening-decline", args=[screening.pk])
    return staff_case(client, url, {"note": "Declined to take part"})


def consent_withdraw(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {"scope": "full", "withdrawn_on": "2026-11-03", "reason": "Moving abroad"}
    url = reverse("participants:consent-withdraw", args=[participant.pk])
    return staff_case(client, url, typed)


def participant_end(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("investigator"))
    typed = {"ended_on": "2026-11-03", "end_reason": "lost", "end_reason_detail": "No answer"}
    url = reverse("participants:participant-end", args=[participant.pk])
    return staff_case(client, url, typed)


def visit_complete(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("investigator"))
    url = reverse("participants:visit-complete", args=[visit.pk])
    return staff_case(client, url, {"visit_date": "2026-11-03"})


def visit_miss(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("participants:visit-miss", args=[visit.pk])
    return staff_case(client, url, {"reason": "Admitted to hospital"})


def unscheduled_visit(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("participants:visit-add-unscheduled", args=[participant.pk])
    return staff_case(client, url, {"visit_date": "2026-11-03", "reason": "New painful lesion"})


def pregnancy_test(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {"test_type": "urine_hcg", "test_date": "2026-11-03", "result": "negative"}
    return staff_case(client, reverse("participants:visit-pregnancy-test", args=[visit.pk]), typed)


def ae_review(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    return staff_case(client, reverse("participants:visit-ae-review", args=[visit.pk]), {"new_events": "no"})


AE_TYPED = {
    "term_code": "injection_site_pain",
    "ctcae_version": "5.0",
    "grade": "2",
    "related_to_sts": "possible",
    "related_to_procedure": "probable",
    "onset_date": "2026-11-02",
    "outcome": "recovering",
    "action_taken": "none",
    "description": "Redness around L1",
}
# The term's text is kept only with the term 'Other' (the page hides it otherwise).
AE_CONDITIONAL = ("term_text",)


def adverse_event_create(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("participants:adverse-event-create", args=[participant.pk])
    return staff_case(client, url, AE_TYPED, conditional=AE_CONDITIONAL)


def adverse_event_edit(request):
    from participants import safety

    participant = request.getfixturevalue("participant")  # noqa: F811
    coordinator_user = request.getfixturevalue("coordinator")
    values = {key: value for key, value in AE_TYPED.items()} | {"grade": 2}
    event = safety.adverse_event_record(actor=coordinator_user, participant=participant, values=values)
    client = sign_in(Client(), coordinator_user)
    url = reverse("participants:adverse-event-edit", args=[event.pk])
    return staff_case(client, url, REASON | {"description": "Spreading"}, conditional=AE_CONDITIONAL)


def deviation_create(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        "site": str(participant.site_id),
        "participant": str(participant.pk),
        "occurred_on": "2026-11-02",
        "category": "visit_window",
        "description": "W0 done a day late",
        "corrective_action": "Reminder calls",
    }
    url = reverse("participants:deviation-create")
    return staff_case(client, url, typed)


def lesion_add(request):
    participant = request.getfixturevalue("participant")  # noqa: F811
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    typed = {
        "label": "L9",
        "anatomical_site": "elbow",
        "laterality": "left",
        "first_seen_on": "2026-09-01",
        "site_detail": "Hard nodule",
    }
    url = reverse("lesions:lesion-add", args=[participant.pk])
    return staff_case(client, url, typed)


def lesion_edit(request):
    lesion = request.getfixturevalue("lesions")[0]
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("lesions:lesion-edit", args=[lesion.pk])
    return staff_case(client, url, REASON | {"site_detail": "Softer"})


def visit_table(request):
    from participants import safety

    visit = request.getfixturevalue("baseline")
    coordinator_user = request.getfixturevalue("coordinator")
    safety.pregnancy_test_record(
        actor=coordinator_user,
        participant=visit.participant,
        test_type="urine_hcg",
        test_date=dt.date(2026, 11, 3),
        result="negative",
    )
    request.getfixturevalue("lesions")
    client = sign_in(Client(), coordinator_user)
    typed = {
        "rows-0-length_mm": "10.0",
        "rows-0-width_mm": "8.0",
        "rows-0-depth_mm": "5.0",
        "rows-0-doppler_signal": "none",
        "rows-0-operator": "Sam Sonographer",
        "rows-0-device": "Demo US-1",
        "rows-0-volume_ml": "0.50",
        "rows-0-needle_gauge": "27",
        "rows-0-ultrasound_guided": "on",
        "rows-0-immediate_pain": "3",
    }
    url = reverse("lesions:visit-table", args=[visit.pk])
    # The table's operator and device are defaults for rows that give none: unused when they do.
    return staff_case(client, url, typed, conditional=("table-operator", "table-device"))


def planned_invitation(participant, code: str) -> Invitation:  # noqa: F811
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    return Invitation.objects.get(participant=participant, instrument_code=code)


def paper_questionnaire(request):
    invitation = planned_invitation(request.getfixturevalue("participant"), "pain_nrs")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("pro_measures:invitation-paper", args=[invitation.pk])
    return staff_case(client, url, {"pain": "5", "completed_on": "2026-11-03"})


def invitation_revoke(request):
    invitation = planned_invitation(request.getfixturevalue("participant"), "pain_nrs")
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("pro_measures:invitation-revoke", args=[invitation.pk])
    return Case(client=client, url=url, data={"reason": "Wrong address"}, text_fields=("reason",))


def patient_questionnaire(request):
    invitation = planned_invitation(request.getfixturevalue("participant"), "haq_di")
    token = invitations.link_create(invitation)
    client = Client(REMOTE_ADDR="10.99.0.1")
    url = reverse("pro_measures:questionnaire-page", args=[token, 1])
    response = client.get(url)
    assert response.status_code == 200
    data = browser_data(*page_forms(response)) | {"section": "dressing", "dressing_1": "1"}
    return Case(client=client, url=url, data=data)


def query_raise(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("monitor"))
    url = reverse("data_management:query-raise", args=["participants.visit", visit.pk])
    typed = {"text": "Please check the date", "suggested_value": "2026-11-02"}
    return staff_case(client, url, typed)


def query_answer(request):
    visit = request.getfixturevalue("baseline")
    query = dm_services.query_raise(
        actor=request.getfixturevalue("monitor"), record=visit, field_name="", text="Please check"
    )
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("data_management:query-detail", args=[query.pk])
    data = {"action": "answer", "answer": "Checked against the source", "data_corrected": ""}
    return Case(client=client, url=url, data=data, text_fields=("answer",))


def user_invite(request):
    admin = request.getfixturevalue("make_user")(role=Role.ADMINISTRATOR)
    client = sign_in(Client(), admin)
    typed = {"email": "new.user@example.org", "full_name": "New User", "roles": ["coordinator"]}
    return staff_case(client, reverse("user-create"), typed)


def user_access(request):
    make_user = request.getfixturevalue("make_user")
    site = request.getfixturevalue("site_a")
    someone = make_user(role=Role.COORDINATOR, sites=[site])
    client = sign_in(Client(), make_user(role=Role.ADMINISTRATOR))
    url = reverse("user-access", args=[someone.pk])
    return staff_case(client, url, REASON | {"roles": ["coordinator", "monitor"]})


def site_edit(request):
    site = request.getfixturevalue("site_a")
    client = sign_in(Client(), request.getfixturevalue("make_user")(role=Role.ADMINISTRATOR))
    typed = REASON | {"name": "Site A (renamed)"}
    return staff_case(client, reverse("site-edit", args=[site.pk]), typed)


FORMS: dict[str, Callable] = {
    builder.__name__: builder
    for builder in (
        screening_create,
        screening_edit,
        eligibility_edit,
        consent_create,
        participant_enroll,
        screening_decline,
        consent_withdraw,
        participant_end,
        visit_complete,
        visit_miss,
        unscheduled_visit,
        pregnancy_test,
        ae_review,
        adverse_event_create,
        adverse_event_edit,
        deviation_create,
        lesion_add,
        lesion_edit,
        visit_table,
        paper_questionnaire,
        invitation_revoke,
        patient_questionnaire,
        query_raise,
        query_answer,
        user_invite,
        user_access,
        site_edit,
    )
}


@pytest.fixture(params=sorted(FORMS))
def case(request, db) -> Case:
    return FORMS[request.param](request)


def test_the_unchanged_form_is_saved(case):
    """The starting point is valid, so a hostile value is what makes a submission fail."""
    assert submit(case.client, case.url, case.data, text_fields=case.text_fields).saved


def test_hostile_input_is_saved_as_typed_or_refused_with_a_reason(case):
    changes = mutations(case.fields())
    if case.text_fields:
        changes = changes | text_mutations(case.text_fields)

    @FUZZ
    @given(changes=changes)
    def run(changes):
        typed = [name for name in case.text_fields if name in changes]
        submit(case.client, case.url, case.data | changes, text_fields=typed)

    run()


# --- What the fuzzing found, pinned -----------------------------------------------------------


def test_text_posted_in_the_concentration_choice_is_refused_not_a_server_error(request, db):
    case = visit_table(request)
    data = case.data | {"rows-0-concentration_mg_per_ml": "<script>alert(1)</script>"}
    outcome = submit(case.client, case.url, data)
    assert (outcome.saved, outcome.status) == (False, 200)


def test_a_device_typed_in_an_otherwise_empty_row_is_refused_not_dropped(request, db):
    case = visit_table(request)
    response = case.client.post(case.url, case.data | {"rows-1-device": "Demo US-2"})
    assert response.status_code == 200
    assert "Required: this lesion is measured." in response.content.decode()
    assert submit(case.client, case.url, case.data | {"rows-1-device": "Demo US-2"}).saved is False


def test_a_paper_questionnaire_is_one_audit_event_of_its_response(request, db):
    case = paper_questionnaire(request)
    outcome = submit(case.client, case.url, case.data)  # one event per record, checked inside
    assert outcome.saved


def test_the_first_page_a_patient_saves_is_one_audit_event_of_the_response(request, db):
    case = patient_questionnaire(request)
    assert submit(case.client, case.url, case.data).saved


def test_an_unknown_button_on_a_query_says_so_instead_of_forbidden(request, db):
    case = query_answer(request)
    response = case.client.post(case.url, case.data | {"action": "delete"}, follow=True)
    assert response.status_code == 200
    assert "Choose one of the page&#x27;s buttons" in response.content.decode()
