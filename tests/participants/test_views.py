"""The screening pages as a coordinator, an investigator and a monitor use them."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from participants import services
from participants.models import (
    ConsentRecord,
    EligibilityAssessment,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
)
from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, ELIGIBLE_ANSWERS, SiteFactory, pdf_upload
from tests.participants.conftest import TODAY
from trial.audit import event_model_for, record_history
from trial.roles import Role

pytestmark = pytest.mark.django_db


def as_post(answers: dict) -> dict:
    """Checklist answers as a browser posts them."""
    data = {}
    for name in EligibilityAssessment.ANSWER_FIELDS:
        value = answers.get(name)
        if value is None:
            data[name] = ""
        elif isinstance(value, bool):
            data[name] = str(value)
        elif isinstance(value, dt.date):
            data[name] = value.isoformat()
        else:
            data[name] = value
    return data


def client_for(user) -> Client:
    return sign_in(Client(), user)


def html(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The page's visible words, whitespace collapsed (for phrases split by markup)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html(response)))


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a], full_name="Mona Monitor")


@pytest.fixture
def data_manager(make_user):
    return make_user(role=Role.DATA_MANAGER, full_name="Dana Datamanager")


@pytest.fixture
def enrolled(consented, coordinator):
    return services.participant_enroll(
        actor=coordinator,
        screening=consented,
        enrolled_on=TODAY,
        email="jane.doe@example.org",
        preferred_language="en",
    )


# --- Roles, permissions and site isolation ----------------------------------------------------

SCREENING_PAGES = [
    "screening-detail",
    "screening-edit",
    "eligibility-edit",
    "consent-create",
    "participant-enroll",
    "screening-decline",
]


@pytest.mark.parametrize("name", ["screening-list", "screening-create", "participant-list"])
def test_coordinator_opens_the_list_pages(name, coordinator, signed_in):
    assert signed_in(coordinator).get(reverse(f"participants:{name}")).status_code == 200


@pytest.mark.parametrize("name", SCREENING_PAGES)
def test_coordinator_opens_the_pages_of_a_screening(name, eligible_screening, coordinator, signed_in):
    response = signed_in(coordinator).get(reverse(f"participants:{name}", args=[eligible_screening.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("name", ["participant-detail", "consent-withdraw", "participant-end"])
def test_coordinator_opens_the_pages_of_a_participant(name, enrolled, coordinator, signed_in):
    response = signed_in(coordinator).get(reverse(f"participants:{name}", args=[enrolled.pk]))
    assert response.status_code == 200


def test_investigator_opens_the_confirmation_queue(investigator, signed_in):
    assert signed_in(investigator).get(reverse("participants:confirmation-queue")).status_code == 200


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("screening-edit", "get"),
        ("eligibility-edit", "get"),
        ("eligibility-preview", "post"),
        ("consent-create", "get"),
        ("participant-enroll", "get"),
        ("screening-decline", "get"),
    ],
)
def test_monitor_may_not_enter_data(name, method, eligible_screening, monitor, signed_in):
    url = reverse(f"participants:{name}", args=[eligible_screening.pk])
    assert getattr(signed_in(monitor), method)(url).status_code == 403


def test_monitor_may_not_add_a_screening_or_change_a_participant(enrolled, monitor, signed_in):
    client = signed_in(monitor)
    assert client.get(reverse("participants:screening-create")).status_code == 403
    assert client.get(reverse("participants:consent-withdraw", args=[enrolled.pk])).status_code == 403
    assert client.get(reverse("participants:participant-end", args=[enrolled.pk])).status_code == 403
    assert client.get(reverse("participants:participant-detail", args=[enrolled.pk])).status_code == 200


def test_only_an_investigator_confirms_eligibility(eligible_screening, coordinator, signed_in):
    client = signed_in(coordinator)
    assert client.get(reverse("participants:confirmation-queue")).status_code == 403
    url = reverse("signatures:eligibility-sign", args=[eligible_screening.pk])
    data = {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}
    assert client.post(url, data).status_code == 403
    assert not EligibilityAssessment.objects.get(screening=eligible_screening).is_confirmed


@pytest.mark.parametrize("name", [*SCREENING_PAGES, "eligibility-preview", "signatures:eligibility-sign"])
def test_another_sites_screening_is_not_found(name, eligible_screening, make_user, site_b):
    outsider = make_user(role=Role.INVESTIGATOR, sites=[site_b])
    url = reverse(name if ":" in name else f"participants:{name}", args=[eligible_screening.pk])
    client = client_for(outsider)
    response = (
        client.post(url)
        if name in ("eligibility-preview", "signatures:eligibility-sign")
        else client.get(url)
    )
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["participant-detail", "consent-withdraw", "participant-end"])
def test_another_sites_participant_is_not_found(name, enrolled, make_user, site_b):
    outsider = make_user(role=Role.COORDINATOR, sites=[site_b])
    assert client_for(outsider).get(reverse(f"participants:{name}", args=[enrolled.pk])).status_code == 404


def test_lists_show_only_the_users_sites(eligible_screening, enrolled, make_user, site_b):
    outsider = make_user(role=Role.COORDINATOR, sites=[site_b])
    client = client_for(outsider)
    assert eligible_screening.screening_number not in html(client.get(reverse("participants:screening-list")))
    assert enrolled.study_id not in html(client.get(reverse("participants:participant-list")))


# --- Identifying data -------------------------------------------------------------------------


def test_monitor_sees_no_name_or_date_of_birth(screen, enrolled, monitor, data_manager, coordinator):
    failed = screen(first_name="Tom", last_name="Young", date_of_birth=dt.date(2008, 11, 3), sex="male")
    services.eligibility_record(actor=coordinator, screening=failed, answers=dict(ELIGIBLE_ANSWERS))
    services.screening_update(
        actor=coordinator,
        screening=enrolled.screening,
        data={"medical_record_number": "MRN-771"},
        reason="record number from the clinic",
    )
    # "turns 18 on <date>" would give the date of birth away as surely as the date itself.
    secrets = [
        "Jane",
        "Doe",
        "1970-05-17",
        "MRN-771",
        "jane.doe@example.org",
        "Tom",
        "Young",
        "2008-11-03",
        "turns 18",
    ]
    pages = [
        reverse("participants:screening-list"),
        reverse("participants:screening-detail", args=[enrolled.screening_id]),
        reverse("participants:screening-detail", args=[failed.pk]),
        reverse("participants:participant-list"),
        reverse("participants:participant-detail", args=[enrolled.pk]),
    ]
    for user in (monitor, data_manager):
        client = client_for(user)
        for url in pages:
            response = client.get(url)
            assert response.status_code == 200, url
            page = html(response)
            assert [s for s in secrets if s in page] == [], (user, url)
        listing = html(client.get(reverse("participants:screening-list")))
        assert enrolled.screening.screening_number in listing and failed.screening_number in listing
    # The site team does see them.
    page = html(client_for(coordinator).get(reverse("participants:screening-detail", args=[failed.pk])))
    assert "Tom Young" in page and "2008-11-03" in page


def test_search_by_name_only_for_those_who_may_see_names(eligible_screening, coordinator, monitor):
    url = reverse("participants:screening-list") + "?q=doe"
    assert eligible_screening.screening_number in html(client_for(coordinator).get(url))
    assert eligible_screening.screening_number not in html(client_for(monitor).get(url))
    by_number = reverse("participants:screening-list") + f"?q={eligible_screening.screening_number}"
    assert eligible_screening.screening_number in html(client_for(monitor).get(by_number))


# --- Screening list ---------------------------------------------------------------------------


def test_screening_list_shows_status_badges_in_words(screen, enrolled, coordinator, investigator, signed_in):
    failed = screen(first_name="Tom", date_of_birth=dt.date(2008, 11, 3))
    services.eligibility_record(actor=coordinator, screening=failed, answers=dict(ELIGIBLE_ANSWERS))
    waiting = screen(first_name="Ann")
    page = text(signed_in(coordinator).get(reverse("participants:screening-list")))
    assert f"{enrolled.screening.screening_number} Jane Doe A1 2026-11-03 Enrolled Eligible Confirmed" in page
    assert f"Consented (v1.0) Enrolled {enrolled.study_id}" in page
    assert f"{failed.screening_number} Tom Doe A1 2026-11-03 Screen failure Not eligible No consent" in page
    assert f"{waiting.screening_number} Ann Doe A1 2026-11-03 In screening Incomplete No consent" in page


def test_screening_list_filters_by_outcome(screen, eligible_screening, coordinator, signed_in):
    other = screen(first_name="Ann")
    page = html(signed_in(coordinator).get(reverse("participants:screening-list") + "?outcome=eligible"))
    assert eligible_screening.screening_number in page
    assert other.screening_number not in page


def test_screening_list_shows_the_current_site_only(screen, coordinator, make_user, site_a, signed_in):
    site_c = SiteFactory(code="C1", name="Site C")
    both = make_user(role=Role.COORDINATOR, sites=[site_a, site_c])
    at_a = screen()
    at_c = services.screening_create(
        actor=both,
        site=site_c,
        first_name="Cy",
        last_name="Sea",
        date_of_birth=dt.date(1960, 1, 1),
        sex="male",
        screening_date=TODAY,
    )
    client = signed_in(both)
    everything = html(client.get(reverse("participants:screening-list")))
    assert at_a.screening_number in everything and at_c.screening_number in everything
    client.post(reverse("site-select"), {"site": site_c.pk, "next": "/"})
    only_c = html(client.get(reverse("participants:screening-list")))
    assert at_c.screening_number in only_c and at_a.screening_number not in only_c


@pytest.mark.parametrize(
    "query",
    [
        "?outcome=nonsense",
        "?page=abc",
        "?page=999",
        "?page=-1",
        "?outcome=eligible&page=2.5",
        "?q=" + "x" * 300,
    ],
)
def test_malformed_query_strings_fall_back(query, eligible_screening, coordinator, signed_in):
    response = signed_in(coordinator).get(reverse("participants:screening-list") + query)
    assert response.status_code == 200
    if "nonsense" in query:
        assert "Select a valid choice" in html(response)
        assert eligible_screening.screening_number in html(response)


def test_participant_list_tolerates_malformed_query_strings(enrolled, coordinator, signed_in):
    response = signed_in(coordinator).get(reverse("participants:participant-list") + "?status=x&page=zz")
    assert response.status_code == 200
    assert enrolled.study_id in html(response)


def test_screening_list_paginates(screen, coordinator, signed_in):
    numbers = [screen(first_name=f"P{i}").screening_number for i in range(27)]
    client = signed_in(coordinator)
    first = html(client.get(reverse("participants:screening-list")))
    second = html(client.get(reverse("participants:screening-list") + "?page=2"))
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert sum(n in first for n in numbers) == 25 and sum(n in second for n in numbers) == 2


def _people(screen, coordinator, investigator, consent, count):
    """`count` people in every state: in screening, failed, eligible, consented and enrolled."""
    for i in range(count):
        screening = screen(first_name=f"Person{i}")
        if i % 3 == 0:
            continue
        services.eligibility_record(actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
        if i % 3 == 1:
            services.eligibility_confirm(actor=investigator, screening=screening)
            services.consent_record(
                actor=coordinator,
                screening=screening,
                document=consent,
                consented_at=timezone.now(),
                participant_signature=f"Person{i} Doe",
                attestation=True,
                copy_given=True,
            )
            services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("name", ["screening-list", "participant-list", "confirmation-queue"])
def test_list_query_count_does_not_grow_with_the_data(
    name, screen, coordinator, investigator, consent_v1, signed_in
):
    client = signed_in(investigator)
    url = reverse(f"participants:{name}")
    _people(screen, coordinator, investigator, consent_v1, 3)
    few = _queries(client, url)
    _people(screen, coordinator, investigator, consent_v1, 27)
    assert _queries(client, url) == few


# --- New screening ----------------------------------------------------------------------------


def test_new_screening_goes_straight_to_the_checklist(coordinator, signed_in, site_a):
    client = signed_in(coordinator)
    page = html(client.get(reverse("participants:screening-create")))
    assert 'type="date"' in page and 'id="id_site"' not in page  # one site: no choice to make
    response = client.post(
        reverse("participants:screening-create"),
        {
            "first_name": "Jane",
            "last_name": "Doe",
            "date_of_birth": "1970-05-17",
            "sex": "female",
            "medical_record_number": "",
            "screening_date": "2026-11-03",
        },
    )
    screening = Screening.objects.get()
    assert screening.site == site_a and screening.screening_number == "A1-S001"
    assert response.status_code == 302
    assert response.url == reverse("participants:eligibility-edit", args=[screening.pk])


def test_new_screening_chooses_among_the_users_sites(make_user, site_a, site_b):
    both = make_user(role=Role.COORDINATOR, sites=[site_a, site_b])
    client = client_for(both)
    page = html(client.get(reverse("participants:screening-create")))
    assert 'id="id_site"' in page and "Site B" in page
    client.post(
        reverse("participants:screening-create"),
        {
            "site": site_b.pk,
            "first_name": "Jo",
            "last_name": "Bee",
            "date_of_birth": "1980-01-01",
            "sex": "male",
            "screening_date": "2026-11-03",
        },
    )
    assert Screening.objects.get().site == site_b


def test_new_screening_refuses_impossible_dates_and_keeps_the_input(coordinator, signed_in):
    response = signed_in(coordinator).post(
        reverse("participants:screening-create"),
        {
            "first_name": "Jane",
            "last_name": "Doe",
            "date_of_birth": "2026-11-03",
            "sex": "female",
            "screening_date": "2026-11-03",
        },
    )
    assert response.status_code == 200
    assert "The screening date must be after the date of birth." in html(response)
    assert 'value="Jane"' in html(response)
    assert not Screening.objects.exists()


# --- Eligibility checklist --------------------------------------------------------------------


def test_checklist_is_one_fieldset_per_protocol_criterion(screen, coordinator, signed_in):
    screening = screen()
    page = html(signed_in(coordinator).get(reverse("participants:eligibility-edit", args=[screening.pk])))
    legends = re.findall(r"<legend[^>]*>\s*(IN\d|EX\d) · ([^<]+)</legend>", page)
    assert [code for code, _ in legends] == ["IN1", "IN2", "IN3", "IN4", "IN5", "EX1"]
    assert "Over 18 years of age" in dict(legends)["IN2"]
    # Yes/no as radio buttons with their own legend; dates as date inputs; the partial date as text.
    assert re.search(r'<input type="radio"[^>]*name="capable_of_consent"[^>]*value="True"', page)
    assert re.search(r"<legend[^>]*>\s*Competent to give informed consent", page)
    assert re.search(r'type="date"[^>]*name="calcinosis_evidence_date"', page)
    assert re.search(r'type="text"[^>]*name="diagnosis_date"', page)
    assert 'name="pregnancy_test_result"' in page  # the pregnancy section is there for everyone
    assert 'name="reason"' not in page  # nothing saved yet: no reason asked
    assert "js/eligibility.js" in page
    assert reverse("participants:eligibility-preview", args=[screening.pk]) in page


def test_checklist_prefills_not_of_childbearing_potential_for_a_man(screen, coordinator, signed_in):
    screening = screen(first_name="John", sex="male")
    page = html(signed_in(coordinator).get(reverse("participants:eligibility-edit", args=[screening.pk])))
    assert re.search(r'name="childbearing_potential" value="False"[^>]*checked', page)
    assert re.search(r'name="non_childbearing_reason" value="male"[^>]*checked', page)


def test_failing_criterion_is_shown_in_words(screen, coordinator, signed_in):
    screening = screen(date_of_birth=dt.date(2008, 11, 3))  # 18 today: not over 18
    client = signed_in(coordinator)
    form_page = text(client.get(reverse("participants:eligibility-edit", args=[screening.pk])))
    assert (
        "IN2 Over 18 years of age Not met Not over 18 on the screening date (turns 18 on 2026-11-03)."
        in form_page
    )
    response = client.post(
        reverse("participants:eligibility-edit", args=[screening.pk]), as_post(ELIGIBLE_ANSWERS), follow=True
    )
    page = text(response)
    assert "Not eligible: IN2 not met." in page
    assert "IN2 Over 18 years of age Not met Not over 18 on the screening date" in page
    assert "IN1 Clinical diagnosis" in page and "Met" in page
    screening.refresh_from_db()
    assert screening.outcome == ScreeningOutcome.SCREEN_FAILURE


def test_saving_progress_with_unanswered_questions(screen, coordinator, signed_in):
    screening = screen()
    response = signed_in(coordinator).post(
        reverse("participants:eligibility-edit", args=[screening.pk]),
        as_post({"diagnosis": "ssc", "capable_of_consent": True}),
        follow=True,
    )
    # IN1 and IN3 answered; IN2 (age) is known from the screening record.
    assert "3 of 6 criteria not answered yet." in text(response)
    assessment = EligibilityAssessment.objects.get(screening=screening)
    assert (assessment.diagnosis, assessment.capable_of_consent, assessment.calcinosis_evidence) == (
        "ssc",
        True,
        None,
    )
    assert assessment.status == "incomplete"


def test_checklist_refuses_a_malformed_partial_date_and_keeps_the_input(screen, coordinator, signed_in):
    screening = screen()
    answers = as_post(ELIGIBLE_ANSWERS) | {"diagnosis_date": "2019-13"}
    response = signed_in(coordinator).post(
        reverse("participants:eligibility-edit", args=[screening.pk]), answers
    )
    assert response.status_code == 200
    assert "Enter a date as YYYY, YYYY-MM or YYYY-MM-DD" in html(response)
    assert 'value="2019-13"' in html(response)
    assert EligibilityAssessment.objects.get(screening=screening).diagnosis == ""


def test_changing_saved_answers_needs_a_reason_and_keeps_the_input(
    eligible_screening, coordinator, signed_in
):
    client = signed_in(coordinator)
    url = reverse("participants:eligibility-edit", args=[eligible_screening.pk])
    assert 'name="reason"' in html(client.get(url))
    changed = as_post(ELIGIBLE_ANSWERS) | {"needs_symptomatic_relief": "False", "reason": "   "}
    response = client.post(url, changed)
    assert response.status_code == 200
    page = html(response)
    assert "Reason for change" in page and "This field is required." in page
    assert re.search(r'name="needs_symptomatic_relief" value="False"[^>]*checked', page)  # kept
    assert "Not eligible: IN5 not met." in text(response)  # the panel shows the unsaved answers
    assert EligibilityAssessment.objects.get(screening=eligible_screening).needs_symptomatic_relief is True

    changed["reason"] = "Patient says the nodules no longer hurt"
    client.post(url, changed)
    assessment = EligibilityAssessment.objects.get(screening=eligible_screening)
    assert assessment.needs_symptomatic_relief is False and assessment.failing_criteria == ["IN5"]
    assert record_history(assessment)[-1].reason == "Patient says the nodules no longer hurt"


def test_checklist_history_page_opens_for_the_site_team(eligible_screening, coordinator, monitor):
    url = reverse(
        "record-history", args=["participants.eligibilityassessment", eligible_screening.eligibility.pk]
    )
    for user in (coordinator, monitor):
        response = client_for(user).get(url)
        assert response.status_code == 200
        assert "eligibility checklist entered" in html(response)


def test_preview_returns_the_panel_and_saves_nothing(eligible_screening, coordinator, signed_in):
    events = event_model_for(EligibilityAssessment).objects.count()
    screening_events = event_model_for(Screening).objects.count()
    answers = as_post(ELIGIBLE_ANSWERS) | {"pregnancy_test_result": "positive", "capable_of_consent": ""}
    response = signed_in(coordinator).post(
        reverse("participants:eligibility-preview", args=[eligible_screening.pk]), answers
    )
    assert response.status_code == 200
    page = text(response)
    assert "<html" not in html(response)  # a fragment for the panel
    assert "Not eligible: EX1 not met." in page
    assert "EX1 Pregnant women are excluded Not met: excluded Pregnancy test positive." in page
    assert "IN3 Competent to give informed consent Not answered" in page
    assessment = EligibilityAssessment.objects.get(screening=eligible_screening)
    assert assessment.pregnancy_test_result == "negative" and assessment.capable_of_consent is True
    assert event_model_for(EligibilityAssessment).objects.count() == events
    assert event_model_for(Screening).objects.count() == screening_events


def test_preview_treats_invalid_answers_as_unanswered(screen, coordinator, signed_in):
    screening = screen()
    answers = as_post(ELIGIBLE_ANSWERS) | {"calcinosis_evidence_date": "not a date"}
    response = signed_in(coordinator).post(
        reverse("participants:eligibility-preview", args=[screening.pk]), answers
    )
    assert response.status_code == 200
    assert "IN4 Radiographic evidence (x-ray or ultrasound) of calcinosis Not answered" in text(response)


def test_preview_accepts_only_post(screen, coordinator, signed_in):
    screening = screen()
    url = reverse("participants:eligibility-preview", args=[screening.pk])
    assert signed_in(coordinator).get(url).status_code == 405


def test_checklist_of_an_enrolled_person_is_closed(enrolled, coordinator, signed_in):
    url = reverse("participants:eligibility-edit", args=[enrolled.screening_id])
    response = signed_in(coordinator).post(url, as_post(ELIGIBLE_ANSWERS) | {"reason": "x"}, follow=True)
    assert "their eligibility can no longer change" in html(response)


# --- Confirmation -----------------------------------------------------------------------------


def test_investigator_confirms_from_the_queue_by_signing(screen, eligible_screening, investigator, signed_in):
    incomplete = screen(first_name="Ann")
    client = signed_in(investigator)
    queue = html(client.get(reverse("participants:confirmation-queue")))
    assert eligible_screening.screening_number in queue and incomplete.screening_number not in queue
    sign = reverse("signatures:eligibility-sign", args=[eligible_screening.pk])
    assert f'href="{sign}"' in queue and "<form" not in queue.split("<main")[-1]  # no one-click confirm
    response = client.post(sign, {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}, follow=True)
    assert "Eligibility confirmed and signed." in html(response)
    assert "Nothing waits for confirmation." in html(client.get(reverse("participants:confirmation-queue")))
    detail = text(client.get(reverse("participants:screening-detail", args=[eligible_screening.pk])))
    # 15:00 UTC is 10:00 in New York (site A's zone).
    assert "Confirmed by Ira Investigator, 2026-11-03 10:00 EST" in detail


def test_signing_an_incomplete_checklist_is_not_offered(screen, investigator, signed_in):
    screening = screen()
    client = signed_in(investigator)
    sign = reverse("signatures:eligibility-sign", args=[screening.pk])
    assert (
        client.post(sign, {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}).status_code == 403
    )
    assert not EligibilityAssessment.objects.filter(screening=screening, confirmed_by__isnull=False).exists()


# --- Consent ----------------------------------------------------------------------------------


def test_consent_form_offers_only_versions_in_force_and_defaults_to_the_current(
    eligible_screening, coordinator, investigator, consent_v1, signed_in
):
    upcoming = services.consent_document_add(
        actor=investigator,
        version="2.0",
        language="en",
        title="Participant information and consent",
        approved_on=dt.date(2026, 10, 1),
        effective_from=dt.date(2027, 1, 1),
        document=pdf_upload(),
    )
    page = html(
        signed_in(coordinator).get(reverse("participants:consent-create", args=[eligible_screening.pk]))
    )
    assert re.search(rf'<option value="{consent_v1.pk}" selected>Version 1.0', page)
    assert f'<option value="{upcoming.pk}"' not in page
    assert "Casey Coordinator" in page  # obtained by: the signed-in user, shown
    assert 'name="obtained_by"' not in page


def test_consent_time_is_the_sites_wall_clock(make_user, consent_v1, signed_in):
    tokyo = SiteFactory(code="T1", name="Tokyo", time_zone="Asia/Tokyo")
    coordinator = make_user(role=Role.COORDINATOR, sites=[tokyo], full_name="Kei Coordinator")
    screening = services.screening_create(
        actor=coordinator,
        site=tokyo,
        first_name="Aiko",
        last_name="Sato",
        date_of_birth=dt.date(1975, 2, 1),
        sex="female",
        screening_date=dt.date(2026, 11, 3),
    )
    client = signed_in(coordinator)
    response = client.post(
        reverse("participants:consent-create", args=[screening.pk]),
        {
            "document": consent_v1.pk,
            "consented_at": "2026-11-03T09:30",
            "participant_signature": "Aiko Sato",
            "attestation": "on",
            "copy_given": "on",
        },
    )
    assert response.status_code == 302
    record = ConsentRecord.objects.get()
    assert record.consented_at == dt.datetime(2026, 11, 3, 0, 30, tzinfo=dt.UTC)
    assert record.obtained_by == coordinator and record.copy_given
    detail = html(client.get(reverse("participants:screening-detail", args=[screening.pk])))
    assert "2026-11-03 09:30 JST" in detail


def test_consent_needs_attestation_and_signature_and_keeps_the_input(
    eligible_screening, coordinator, consent_v1, signed_in
):
    response = signed_in(coordinator).post(
        reverse("participants:consent-create", args=[eligible_screening.pk]),
        {
            "document": consent_v1.pk,
            "consented_at": "2026-11-03T09:30",
            "participant_signature": "Jane Doe",
            "representative_name": "John Doe",
        },
    )
    assert response.status_code == 200
    page = html(response)
    assert "The participant must confirm the attestation to consent." in page
    assert "Give the representative&#x27;s relationship." in page
    assert 'value="John Doe"' in page and 'value="2026-11-03T09:30"' in page
    assert not ConsentRecord.objects.exists()


def test_consent_in_the_future_is_refused_by_the_service(
    eligible_screening, coordinator, consent_v1, signed_in
):
    response = signed_in(coordinator).post(
        reverse("participants:consent-create", args=[eligible_screening.pk]),
        {
            "document": consent_v1.pk,
            "consented_at": "2026-11-04T09:30",
            "participant_signature": "Jane Doe",
            "attestation": "on",
        },
    )
    assert response.status_code == 200
    assert "The consent time cannot be in the future." in html(response)


def test_consent_after_confirmation_leads_on_to_enrolment(
    eligible_screening, investigator, consent_v1, signed_in
):
    services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    response = signed_in(investigator).post(
        reverse("participants:consent-create", args=[eligible_screening.pk]),
        {
            "document": consent_v1.pk,
            "consented_at": "2026-11-03T09:30",
            "participant_signature": "Jane Doe",
            "attestation": "on",
        },
    )
    assert response.url == reverse("participants:participant-enroll", args=[eligible_screening.pk])


# --- Enrolment and decline --------------------------------------------------------------------


def test_enrolment_refused_shows_the_reason_and_keeps_the_input(eligible_screening, coordinator, signed_in):
    response = signed_in(coordinator).post(
        reverse("participants:participant-enroll", args=[eligible_screening.pk]),
        {
            "enrolled_on": "2026-11-03",
            "email": "jane.doe@example.org",
            "preferred_language": "en",
            "time_zone": "Europe/Paris",
        },
    )
    assert response.status_code == 200
    page = html(response)
    assert "An investigator must confirm eligibility before enrolment." in page
    assert 'value="jane.doe@example.org"' in page
    assert re.search(r'<option value="Europe/Paris" selected>', page)
    assert not Participant.objects.exists()


def test_enrolment_gives_the_study_id(consented, coordinator, signed_in):
    client = signed_in(coordinator)
    page = html(client.get(reverse("participants:participant-enroll", args=[consented.pk])))
    assert re.search(r'<option value="America/New_York" selected>', page)  # the site's zone
    assert 'value="2026-11-03"' in page
    response = client.post(
        reverse("participants:participant-enroll", args=[consented.pk]),
        {
            "enrolled_on": "2026-11-03",
            "email": "Jane.Doe@Example.org",
            "preferred_language": "en",
            "time_zone": "America/New_York",
        },
        follow=True,
    )
    participant = Participant.objects.get()
    assert participant.study_id == "A1-001" and participant.email == "jane.doe@example.org"
    assert "Enrolled. Study id: A1-001" in html(response)
    assert response.redirect_chain[-1][0] == participant.get_absolute_url()


def test_eligible_person_not_enrolled_is_recorded_with_the_reason(eligible_screening, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:screening-decline", args=[eligible_screening.pk])
    assert client.post(url, {"note": "  "}).status_code == 200
    client.post(url, {"note": "Declined: lives too far away"})
    eligible_screening.refresh_from_db()
    assert eligible_screening.outcome == ScreeningOutcome.DECLINED
    assert eligible_screening.outcome_note == "Declined: lives too far away"


def test_a_decline_recorded_by_mistake_is_undone_with_a_reason_and_the_person_can_be_enrolled(
    eligible_screening, coordinator, investigator, make_user, signed_in
):
    client = signed_in(coordinator)
    client.post(
        reverse("participants:screening-decline", args=[eligible_screening.pk]), {"note": "Declined by phone"}
    )
    page = html(client.get(eligible_screening.get_absolute_url()))
    undo = reverse("participants:screening-decline-undo", args=[eligible_screening.pk])
    decline = reverse("participants:screening-decline", args=[eligible_screening.pk])
    assert f'href="{undo}"' in page and f'href="{decline}"' not in page

    assert "This field is required." in html(client.post(undo, {"reason": "   "}))
    eligible_screening.refresh_from_db()
    assert eligible_screening.outcome == ScreeningOutcome.DECLINED  # nothing changed

    response = client.post(undo, {"reason": "Recorded for the wrong person"}, follow=True)
    assert "Eligible for enrolment again." in html(response)
    eligible_screening.refresh_from_db()
    assert (eligible_screening.outcome, eligible_screening.outcome_note) == (ScreeningOutcome.ELIGIBLE, "")
    last = (
        event_model_for(Screening).objects.filter(pgh_obj_id=eligible_screening.pk).order_by("pgh_id").last()
    )
    assert last.pgh_context["reason"] == "Recorded for the wrong person" and last.outcome == "eligible"
    # Undone once: there is nothing left to undo.
    again = client.post(undo, {"reason": "twice"})
    assert "Only a person recorded as not enrolled can be made eligible again." in html(again)
    # A monitor reads the screening but cannot change it.
    monitor = make_user(role=Role.MONITOR, sites=[eligible_screening.site])
    assert Client().get(undo).status_code == 302  # anonymous: to sign in
    assert sign_in(Client(), monitor).post(undo, {"reason": "x"}).status_code == 403


def test_screen_failure_cannot_be_recorded_as_declined(screen, coordinator, signed_in):
    failed = screen(date_of_birth=dt.date(2008, 11, 3))
    services.eligibility_record(actor=coordinator, screening=failed, answers=dict(ELIGIBLE_ANSWERS))
    response = signed_in(coordinator).post(
        reverse("participants:screening-decline", args=[failed.pk]), {"note": "Declined"}
    )
    assert "Only an eligible person can be recorded as not enrolled." in html(response)
    failed.refresh_from_db()
    assert failed.outcome == ScreeningOutcome.SCREEN_FAILURE


def test_correcting_the_screening_record_needs_a_reason(eligible_screening, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:screening-edit", args=[eligible_screening.pk])
    data = {
        "first_name": "Janet",
        "last_name": "Doe",
        "date_of_birth": "1970-05-17",
        "sex": "female",
        "medical_record_number": "",
        "screening_date": "2026-11-03",
    }
    response = client.post(url, data)
    assert response.status_code == 200 and 'value="Janet"' in html(response)
    client.post(url, data | {"reason": "Spelling from the passport"})
    eligible_screening.refresh_from_db()
    assert eligible_screening.first_name == "Janet"
    assert record_history(eligible_screening)[-1].reason == "Spelling from the passport"


# --- Participants -----------------------------------------------------------------------------


def test_participant_list_flags_reconsent_when_a_new_version_is_in_force(
    enrolled, coordinator, investigator, signed_in
):
    client = signed_in(coordinator)
    row = re.compile(rf'data-participant="{enrolled.study_id}".*?</tr>', re.S)
    before = row.search(html(client.get(reverse("participants:participant-list")))).group(0)
    assert "v1.0" in before and "Re-consent needed" not in before
    services.consent_document_add(
        actor=investigator,
        version="2.0",
        language="en",
        title="Participant information and consent",
        approved_on=dt.date(2026, 10, 1),
        effective_from=dt.date(2026, 11, 1),
        document=pdf_upload(),
    )
    after = row.search(html(client.get(reverse("participants:participant-list")))).group(0)
    assert "Re-consent needed" in after
    assert "Re-consent needed" in html(
        client.get(reverse("participants:participant-detail", args=[enrolled.pk]))
    )


def test_withdrawal_of_consent_ends_contact(enrolled, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:consent-withdraw", args=[enrolled.pk])
    refused = client.post(url, {"scope": "no_contact", "withdrawn_on": "2026-11-05", "reason": ""})
    assert "This date is in the future." in html(refused)
    response = client.post(
        url, {"scope": "no_contact", "withdrawn_on": "2026-11-03", "reason": "Moving abroad"}, follow=True
    )
    assert "Withdrawal of consent recorded" in html(response)
    enrolled.refresh_from_db()
    assert enrolled.status == ParticipantStatus.WITHDRAWN
    assert not Participant.objects.contactable().filter(pk=enrolled.pk).exists()
    assert "Moving abroad" in html(response)


def test_end_of_study_with_reason_and_date(enrolled, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:participant-end", args=[enrolled.pk])
    assert client.post(url, {"ended_on": "2026-11-03", "end_reason": ""}).status_code == 200
    client.post(
        url, {"ended_on": "2026-11-03", "end_reason": "adverse_event", "end_reason_detail": "Skin ulcer"}
    )
    enrolled.refresh_from_db()
    assert (enrolled.status, enrolled.end_reason, enrolled.end_reason_detail) == (
        ParticipantStatus.WITHDRAWN,
        "adverse_event",
        "Skin ulcer",
    )
    again = client.get(url, follow=True)
    assert "already ended" in html(again)
