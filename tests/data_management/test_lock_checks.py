"""Locks checked before writing: every service that writes clinical data refuses locked data with
"Locked by <who> on <day>: <why>" and writes nothing; every edit page of locked data shows that
banner instead of its form (no 409, no 500). And the lock covers screening, eligibility, consent
and questionnaire responses too, in the database (ORM and raw SQL)."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from lesions import services as lesion_services
from lesions.models import UltrasoundMeasurement
from participants import safety
from participants import services as participant_services
from participants import visits as visit_services
from participants.models import ConsentRecord, EligibilityAssessment, Screening
from pro_measures import invitations
from pro_measures.models import Response, Score
from tests.conftest import sign_in
from tests.data_management.test_locks import add_ae, refused, save_l1
from tests.participants.conftest import TODAY
from tests.participants.test_visit_views import ae_data
from tests.pro_measures.answers import HAQ_WORKED, as_post, invite
from tests.pro_measures.test_patient_pages import new_address  # noqa: F401 - fixture
from trial.audit import audited_models, event_model_for
from trial.data_management import locking, services
from trial.locks import lock_in_force

pytestmark = pytest.mark.django_db

WHY = "Interim analysis database lock"


def clinical_event_count() -> int:
    """Audit events of every clinical table: any write, by any path, adds one."""
    return sum(
        event_model_for(model).objects.count()
        for model in audited_models()
        if model._meta.app_label in ("participants", "lesions", "pro_measures")
    )


def refused_with_message(write) -> str:
    """Run `write`; it must be refused by the lock check (not the database) and write nothing."""
    before = clinical_event_count()
    with pytest.raises(ValidationError) as info, transaction.atomic():
        write()
    assert info.value.code == "locked", info.value
    assert clinical_event_count() == before
    return info.value.messages[0]


@pytest.fixture
def invitation(visit_data):
    return invite(visit_data, "haq_di")


def service_writes(visit, participant, coordinator, investigator, monitor, consent_v1, invitation):
    """Every service that writes a participant's clinical data, called with valid input."""
    event = participant.adverse_events.get()
    query = services.query_raise(actor=monitor, record=event, field_name="grade", text="Grade 2 in notes?")
    return {
        "visit complete": lambda: visit_services.visit_complete(
            actor=coordinator, visit=visit, visit_date=TODAY
        ),
        "visit missed": lambda: visit_services.visit_miss(actor=coordinator, visit=visit, reason="ill"),
        "unscheduled visit": lambda: visit_services.visit_add_unscheduled(
            actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
        ),
        "measurement and injection table": lambda: save_l1(visit, coordinator, "30.0"),
        "lesion added": lambda: lesion_services.lesion_add(
            actor=coordinator,
            participant=participant,
            label="L9",
            anatomical_site="elbow",
            laterality="right",
            first_seen_on=dt.date(2026, 10, 1),
        ),
        "lesion corrected": lambda: lesion_services.lesion_update(
            actor=coordinator,
            lesion=participant.lesions.get(label="L2"),
            data={"laterality": "right"},
            reason="wrong side",
        ),
        "adverse event": lambda: add_ae(participant, coordinator, visit),
        "adverse event follow-up": lambda: safety.adverse_event_update(
            actor=coordinator,
            event=event,
            values={"outcome": "recovered"},
            reason="resolved",
            expected_version=event.row_version,
        ),
        "pregnancy test": lambda: safety.pregnancy_test_record(
            actor=coordinator,
            participant=participant,
            test_type="urine_hcg",
            test_date=TODAY,
            result="negative",
            visit=visit,
        ),
        "AE review": lambda: safety.ae_review_record(
            actor=coordinator, visit=visit, new_events=False, reason="none after all"
        ),
        "deviation": lambda: safety.deviation_record(
            actor=coordinator,
            site=participant.site,
            occurred_on=TODAY,
            category="procedure",
            description="Depth not measured",
            participant=participant,
        ),
        "re-consent": lambda: participant_services.consent_record(
            actor=coordinator,
            screening=participant.screening,
            document=consent_v1,
            consented_at=timezone.now(),
            participant_signature="Jane Doe",
            attestation=True,
            copy_given=True,
        ),
        "consent withdrawal": lambda: participant_services.consent_withdraw(
            actor=coordinator, screening=participant.screening, withdrawn_on=TODAY, scope="all"
        ),
        "screening correction": lambda: participant_services.screening_update(
            actor=coordinator,
            screening=participant.screening,
            data={"medical_record_number": "MRN-2"},
            reason="typo",
        ),
        "eligibility": lambda: participant_services.eligibility_record(
            actor=coordinator,
            screening=participant.screening,
            answers={"capable_of_consent": False},
            reason="x",
        ),
        "end of study": lambda: participant_services.participant_end(
            actor=coordinator, participant=participant, ended_on=TODAY, end_reason="lost"
        ),
        "paper questionnaire": lambda: invitations.response_enter_paper(
            actor=coordinator, invitation=invitation, answers=HAQ_WORKED, completed_on=TODAY
        ),
        "patient's answers": lambda: invitations.response_save_answers(
            invitation=invitation, answers={"dressing_1": 1}
        ),
        "query answered with a correction": lambda: services.query_answer(
            actor=coordinator, query=query, answer="Corrected to grade 2", data_corrected=True
        ),
    }


def test_every_write_path_refuses_a_locked_participant_with_who_when_and_why(
    visit_data, participant, coordinator, investigator, monitor, data_manager, consent_v1, invitation
):
    writes = service_writes(
        visit_data, participant, coordinator, investigator, monitor, consent_v1, invitation
    )
    locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    for name, write in writes.items():
        message = refused_with_message(write)
        assert message.startswith(f"Locked by Dana Datamanager on {TODAY.isoformat()}: {WHY}."), name


def test_a_visit_lock_refuses_that_visits_writes_and_leaves_the_rest(
    visit_data, participant, coordinator, investigator, monitor, data_manager, consent_v1, invitation
):
    writes = service_writes(
        visit_data, participant, coordinator, investigator, monitor, consent_v1, invitation
    )
    locking.lock_create(actor=data_manager, visit=visit_data)
    for name in (
        "visit complete",
        "measurement and injection table",
        "adverse event",  # reported at the locked visit
        "AE review",
        "pregnancy test",
        "paper questionnaire",
        "query answered with a correction",  # the query is on an AE of the locked visit
    ):
        message = refused_with_message(writes[name])
        assert f"Lock of visit {visit_data}" in message, name
    # The participant's other records stay writable.
    writes["deviation"]()
    writes["screening correction"]()


def test_a_study_lock_refuses_a_new_screening(data_manager, screen):
    locking.lock_create(actor=data_manager, reason=WHY)
    assert WHY in refused_with_message(lambda: screen(first_name="Late"))


def test_an_answer_without_a_correction_is_still_possible_on_locked_data(
    visit_data, participant, coordinator, monitor, data_manager
):
    query = services.query_raise(
        actor=monitor, record=participant.adverse_events.get(), field_name="grade", text="Grade?"
    )
    locking.lock_create(actor=data_manager, participant=participant)
    answered = services.query_answer(actor=coordinator, query=query, answer="Grade 1 is right")
    assert answered.state == "answered"


# --- Pages -----------------------------------------------------------------------------------


def edit_pages(visit, participant, invitation):
    """(url, POST data) of every edit page of a participant's data, with valid input."""
    event = participant.adverse_events.get()
    screening = participant.screening
    l1 = participant.lesions.get(label="L1")
    return [
        (reverse("participants:visit-complete", args=[visit.pk]), {"visit_date": "2026-11-03"}),
        (reverse("participants:visit-miss", args=[visit.pk]), {"reason": "ill"}),
        (
            reverse("participants:visit-add-unscheduled", args=[participant.pk]),
            {"visit_date": "2026-11-03", "reason": "flare"},
        ),
        (reverse("participants:visit-pregnancy-test", args=[visit.pk]), {}),
        (reverse("participants:visit-ae-review", args=[visit.pk]), {"new_events": "false"}),
        (
            reverse("participants:adverse-event-create", args=[participant.pk]),
            ae_data(reported_at_visit=str(visit.pk)),
        ),
        (reverse("participants:adverse-event-edit", args=[event.pk]), ae_data(reason="follow-up")),
        (
            reverse("participants:deviation-create") + f"?participant={participant.pk}",
            {"participant": participant.pk, "description": "x"},
        ),
        (reverse("participants:screening-edit", args=[screening.pk]), {"reason": "typo"}),
        (reverse("participants:eligibility-edit", args=[screening.pk]), {}),
        (reverse("participants:consent-create", args=[screening.pk]), {}),
        (reverse("participants:consent-withdraw", args=[participant.pk]), {"scope": "all"}),
        (reverse("participants:participant-end", args=[participant.pk]), {}),
        (reverse("lesions:lesion-add", args=[participant.pk]), {"label": "L9"}),
        (reverse("lesions:lesion-edit", args=[l1.pk]), {"reason": "x"}),
        (
            reverse("pro_measures:invitation-paper", args=[invitation.pk]),
            as_post(HAQ_WORKED, completed_on="2026-11-03"),
        ),
    ]


def test_every_edit_page_of_locked_data_shows_the_lock_instead_of_its_form(
    visit_data, participant, coordinator, data_manager, invitation, client
):
    pages = edit_pages(visit_data, participant, invitation)
    locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    sign_in(client, coordinator)
    before = clinical_event_count()
    for url, data in pages:
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.content.decode()
        assert f"Locked by Dana Datamanager on 2026-11-03: {WHY}" in text, url
        assert [t.name for t in page.templates][0] == "locked.html", url  # the banner, not the form
        posted = client.post(url, data)
        assert posted.status_code == 200, url
        assert "Nothing was saved" in posted.content.decode() and WHY in posted.content.decode(), url
    assert clinical_event_count() == before


def test_the_lesion_table_of_a_locked_visit_is_read_only_and_says_why(
    visit_data, coordinator, data_manager, client
):
    url = reverse("lesions:visit-table", args=[visit_data.pk])
    sign_in(client, coordinator)
    length_input = re.compile(r'<input[^>]*name="rows-0-length_mm"[^>]*>')
    assert "disabled" not in length_input.search(client.get(url).content.decode()).group()
    locking.lock_create(actor=data_manager, visit=visit_data, reason=WHY)
    page = client.get(url).content.decode()
    assert WHY in page and "disabled" in length_input.search(page).group()
    assert "Save the table" not in page
    response = client.post(url, {"rows-TOTAL_FORMS": "1"}, follow=True)
    assert response.status_code == 200 and WHY in response.content.decode()
    lengths = UltrasoundMeasurement.objects.filter(visit=visit_data).values_list("length_mm", flat=True)
    assert sorted(lengths) == [12, 20]


def test_the_visit_page_of_a_locked_visit_offers_no_edits(visit_data, coordinator, data_manager, client):
    sign_in(client, coordinator)
    page = client.get(visit_data.get_absolute_url()).content.decode()
    assert reverse("participants:visit-complete", args=[visit_data.pk]) in page
    locking.lock_create(actor=data_manager, visit=visit_data, reason=WHY)
    page = client.get(visit_data.get_absolute_url()).content.decode()
    assert f"Locked by Dana Datamanager on 2026-11-03: {WHY}" in page
    for action in ("visit-complete", "visit-miss", "visit-ae-review", "visit-pregnancy-test"):
        assert reverse(f"participants:{action}", args=[visit_data.pk]) not in page, action
    assert "Report an adverse event" not in page


def test_the_image_page_of_a_locked_visit_offers_no_upload_and_refuses_one_with_the_message(
    visit_data, coordinator, data_manager, client
):
    l1 = visit_data.participant.lesions.get(label="L1")
    url = reverse("lesions:dicom-page", args=[visit_data.pk, l1.pk])
    sign_in(client, coordinator)
    assert 'id="dicom-upload-form"' in client.get(url).content.decode()
    locking.lock_create(actor=data_manager, visit=visit_data, reason=WHY)
    page = client.get(url).content.decode()
    assert WHY in page and 'id="dicom-upload-form"' not in page
    before = clinical_event_count()
    for name in ("dicom-upload", "dicom-measurement"):
        response = client.post(reverse(f"lesions:{name}", args=[visit_data.pk, l1.pk]), {}, follow=True)
        assert response.status_code == 200 and WHY in response.content.decode(), name
    assert clinical_event_count() == before


def test_a_query_answer_claiming_a_correction_of_locked_data_gets_the_message(
    visit_data, participant, coordinator, monitor, data_manager, client
):
    query = services.query_raise(
        actor=monitor, record=participant.adverse_events.get(), field_name="grade", text="Grade?"
    )
    locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    sign_in(client, coordinator)
    response = client.post(
        query.get_absolute_url(),
        {"action": "answer", "answer": "Corrected", "data_corrected": "on"},
        follow=True,
    )
    assert response.status_code == 200 and WHY in response.content.decode()
    query.refresh_from_db()
    assert query.state == "open"


# --- The database guard covers screening, eligibility, consent and questionnaires --------------


def raw(sql: str, params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_a_participant_lock_covers_their_screening_eligibility_consent_and_questionnaires(
    visit_data, participant, coordinator, data_manager, invitation
):
    invitations.response_enter_paper(
        actor=coordinator, invitation=invitation, answers=HAQ_WORKED, completed_on=TODAY
    )
    screening = participant.screening
    response = Response.objects.get(invitation=invitation)
    locking.lock_create(actor=data_manager, participant=participant)
    assert lock_in_force(screening=screening) is not None
    # Through the ORM, bypassing every service ...
    assert refused(lambda: Screening.objects.filter(pk=screening.pk).update(first_name="X"))
    assert refused(
        lambda: EligibilityAssessment.objects.filter(screening=screening).update(capable_of_consent=False)
    )
    assert refused(lambda: ConsentRecord.objects.filter(screening=screening).update(witness_name="X"))
    assert refused(lambda: Response.objects.filter(pk=response.pk).update(answers={}))
    assert refused(lambda: Score.objects.filter(response=response).update(value=0))
    assert refused(lambda: Score.objects.filter(response=response).delete())
    # ... and through raw SQL.
    assert refused(
        lambda: raw("UPDATE participants_screening SET last_name = 'X' WHERE id = %s", [screening.pk])
    )
    assert refused(
        lambda: raw("DELETE FROM participants_consentrecord WHERE screening_id = %s", [screening.pk])
    )
    assert refused(
        lambda: raw("UPDATE pro_measures_response SET answers = '{}' WHERE id = %s", [response.pk])
    )
    assert refused(
        lambda: raw("UPDATE pro_measures_score SET value = 0 WHERE response_id = %s", [response.pk])
    )
    screening.refresh_from_db()
    assert screening.first_name == "Jane" and Response.objects.get().answers == HAQ_WORKED


def test_a_visit_lock_covers_that_visits_questionnaires_only(
    visit_data, participant, coordinator, data_manager, invitation
):
    invitations.response_enter_paper(
        actor=coordinator, invitation=invitation, answers=HAQ_WORKED, completed_on=TODAY
    )
    response = Response.objects.get(invitation=invitation)
    locking.lock_create(actor=data_manager, visit=visit_data)
    assert refused(
        lambda: raw("UPDATE pro_measures_response SET answers = '{}' WHERE id = %s", [response.pk])
    )
    # The screening is the participant's, not the visit's.
    assert not refused(
        lambda: Screening.objects.filter(pk=participant.screening_id).update(medical_record_number="M")
    )


def test_a_study_lock_covers_people_not_enrolled(screen, data_manager):
    person = screen(first_name="Pat")
    locking.lock_create(actor=data_manager)
    assert refused(lambda: Screening.objects.filter(pk=person.pk).update(first_name="X"))
    assert refused(
        lambda: raw(
            "UPDATE participants_eligibilityassessment SET capable_of_consent = FALSE WHERE screening_id = %s",
            [person.pk],
        )
    )


def test_a_patient_answering_a_locked_questionnaire_is_told_plainly_and_nothing_is_saved(
    invitation,
    participant,
    data_manager,
    new_address,  # noqa: F811 - the imported fixture
):
    from django.test import Client

    from pro_measures.models import Response as QuestionnaireResponse
    from tests.pro_measures.test_patient_pages import HAQ_PAGES, post_page, start_url

    token = invitations.link_create(invitation)
    patient = Client(REMOTE_ADDR=new_address())
    assert patient.get(start_url(token)).status_code == 200
    locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    response = post_page(patient, token, 1, HAQ_PAGES["dressing"], action="next")
    text = response.content.decode()
    assert response.status_code == 200
    assert "Your answers cannot be changed at the moment" in text
    assert "Dana" not in text and WHY not in text  # no staff names or reasons on a patient page
    assert not QuestionnaireResponse.objects.filter(invitation=invitation).exists()


def test_list_and_record_pages_of_a_locked_participant_offer_no_add_or_edit_buttons(
    visit_data, participant, coordinator, data_manager, client
):
    sign_in(client, coordinator)
    pages = {
        "timeline": (reverse("participant-timeline", args=[participant.pk]), "Add an unscheduled visit"),
        "adverse events": (
            reverse("participants:adverse-event-list", args=[participant.pk]),
            "Report an adverse event",
        ),
        "participant": (
            reverse("participants:participant-detail", args=[participant.pk]),
            reverse("participants:consent-withdraw", args=[participant.pk]),
        ),
    }
    for name, (url, action) in pages.items():
        assert action in client.get(url).content.decode(), name
    locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    for name, (url, action) in pages.items():
        assert action not in client.get(url).content.decode(), name


def test_a_visits_lock_state_read_with_it_is_lock_in_forces_answer(visit_data, data_manager):
    """`visit_locked()` (the lock state read in the same statement as the visit, by the lesion
    table and its service) says what `lock_in_force` says, for every scope of lock."""
    from participants.models import Visit
    from trial.locks import visit_locked

    participant = visit_data.participant
    other_visit = participant.visits.exclude(pk=visit_data.pk).first()

    def answers() -> list[tuple[bool, bool]]:
        visits = Visit.objects.filter(pk__in=[visit_data.pk, other_visit.pk]).annotate(locked=visit_locked())
        return sorted((visit.locked, lock_in_force(visit=visit) is not None) for visit in visits)

    assert answers() == [(False, False), (False, False)]
    visit_lock = locking.lock_create(actor=data_manager, visit=visit_data, reason=WHY)
    assert answers() == [(False, False), (True, True)]  # that visit only
    locking.lock_release(actor=data_manager, lock=visit_lock, reason="checked")
    assert answers() == [(False, False), (False, False)]
    participant_lock = locking.lock_create(actor=data_manager, participant=participant, reason=WHY)
    assert answers() == [(True, True), (True, True)]
    locking.lock_release(actor=data_manager, lock=participant_lock, reason="checked")
    locking.lock_create(actor=data_manager, reason=WHY)  # the whole study
    assert answers() == [(True, True), (True, True)]
