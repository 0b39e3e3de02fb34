"""The patient's questionnaire pages, opened from the e-mailed link: start, one section per page,
answers saved as the patient goes and resumed, review, submit and thank-you; the friendly pages
for links that cannot be used; the headers; unknown links slowed then blocked per address; bad
input answered with a message, never a 500.

Time is frozen at Tuesday 3 November 2026, 15:00 UTC (10:00 in New York, the participant's zone);
the baseline questionnaires opened at 09:00 New York and close on 10 November.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from decimal import Decimal
from html import unescape

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.test import Client, RequestFactory
from django.urls import reverse

from pro_measures import invitations, reminders, views
from pro_measures.instruments import INSTRUMENTS, ItemKind
from pro_measures.models import Invitation, InvitationStatus, Reminder, ReminderState, Response, Score
from tests.conftest import sign_in
from trial.audit import event_model_for

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)
HAQ = INSTRUMENTS["haq_di"]

# HAQ-DI worked by hand, one category per page:
#   dressing 1,0 + aids -> 2; arising 0,0 -> 0; eating 1,2,0 -> 2; walking 1,1 + help -> 2;
#   hygiene 0,0,0 -> 0; reach 3,1 -> 3; grip 1,1,1 -> 1; activities 0,1,0 -> 1.
#   HAQ-DI = 11 / 8 = 1.375
HAQ_PAGES = {
    "dressing": {"dressing_1": 1, "dressing_2": 0, "dressing_aids": True, "dressing_help": False},
    "arising": {"arising_1": 0, "arising_2": 0},
    "eating": {"eating_1": 1, "eating_2": 2, "eating_3": 0},
    "walking": {"walking_1": 1, "walking_2": 1, "walking_help": True},
    "hygiene": {"hygiene_1": 0, "hygiene_2": 0, "hygiene_3": 0},
    "reach": {"reach_1": 3, "reach_2": 1},
    "grip": {"grip_1": 1, "grip_2": 1, "grip_3": 1},
    "activities": {"activities_1": 0, "activities_2": 1, "activities_3": 0},
}


def start_url(token: str) -> str:
    return reverse("pro_measures:questionnaire", args=[token])


def page_url(token: str, number: int) -> str:
    return reverse("pro_measures:questionnaire-page", args=[token, number])


def review_url(token: str) -> str:
    return reverse("pro_measures:questionnaire-review", args=[token])


def thanks_url(token: str) -> str:
    return reverse("pro_measures:questionnaire-thanks", args=[token])


def form_value(value) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def post_page(client, token, number, answers, *, section=None, **extra):
    """Press a page's button with these answers (as the browser would post them)."""
    code = HAQ.sections[number - 1].code if section is None else section
    data = {"section": code, **{k: form_value(v) for k, v in answers.items()}, **extra}
    return client.post(page_url(token, number), data)


def text_of(response) -> str:
    """The page's text without tags, spaces collapsed (what a reader sees)."""
    html = response.content.decode()
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def saved(invitation: Invitation) -> dict:
    response = Response.objects.filter(invitation=invitation).first()
    return response.answers if response else {}


@pytest.fixture
def links(participant):
    """The baseline visit's invitations, planned, with one link (token) each: {code: token}."""
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    return {
        invitation.instrument_code: invitations.link_create(invitation)
        for invitation in Invitation.objects.filter(participant=participant)
    }


def invitation_of(code: str) -> Invitation:
    return Invitation.objects.get(instrument_code=code)


@pytest.fixture
def new_address():
    """Client addresses of this test only (the cache is shared by every test run on the machine);
    their counts of unknown links are removed afterwards."""
    made = []

    def make() -> str:
        address = f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"
        made.append(address)
        return address

    yield make
    for address in made:
        cache.delete(views._bad_links_key(RequestFactory().get("/", REMOTE_ADDR=address)))


@pytest.fixture
def patient(new_address):
    """The patient's phone: a browser with no cookies yet, at an address of its own."""
    return Client(REMOTE_ADDR=new_address())


# --- Every instrument renders ---------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(INSTRUMENTS))
def test_every_instrument_shows_its_start_its_pages_and_its_review(code, links, patient):
    definition = INSTRUMENTS[code]
    token = links[code]
    start = patient.get(start_url(token))
    assert start.status_code == 200
    text = text_of(start)
    assert str(definition.title) in text
    assert f"Think about {definition.recall_period} when you answer" in text
    pages = len(definition.sections)
    assert ("There is 1 page" if pages == 1 else f"There are {pages} pages") in text
    assert "Your answers are saved as you go" in text
    assert "The link works until 10 November 2026" in text
    assert invitation_of(code).opened_at == NOW

    for number, section in enumerate(definition.sections, start=1):
        page = patient.get(page_url(token, number))
        assert page.status_code == 200
        html, text = page.content.decode(), text_of(page)
        assert f"Page {number} of {pages}" in text
        assert html.count("<h1") == 1
        assert f'aria-valuenow="{number}"' in html and f'aria-valuemax="{pages}"' in html
        for item in section.items:
            assert str(item.text) in text
            assert f'id="q-{item.link_id}"' in html  # the question's fieldset
            radios = re.findall(rf'type="radio" name="{item.link_id}"', html)
            if item.kind == ItemKind.VISUAL_ANALOGUE:
                assert re.search(rf'type="number"[^>]*name="{item.link_id}"', html)
                assert 'type="range"' in html
            elif item.kind == ItemKind.NUMERIC_SCALE:
                assert len(radios) == item.maximum - item.minimum + 1
            elif item.kind == ItemKind.BOOLEAN:
                assert len(radios) == 2
            else:
                assert len(radios) == len(item.options)
        # Back from every page but the first; Next on every page.
        assert ('value="back"' in html) == (number > 1)
        assert 'value="next"' in html

    review = patient.get(review_url(token))
    assert review.status_code == 200
    assert "Check your answers" in text_of(review)


def test_the_link_in_the_email_opens_the_questionnaire(participant, patient):
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    reminders.reminders_send_due(now=NOW)
    paths = [re.search(r"https?://[^/\s]+(/q/\S+/)", m.body).group(1) for m in mail.outbox]
    titles = {text_of(patient.get(path)).split(" · ")[0] for path in paths}
    assert len(paths) == len(INSTRUMENTS)
    for definition in INSTRUMENTS.values():
        assert any(str(definition.title) in title for title in titles)


def test_pain_scale_is_a_row_of_0_to_10_with_its_anchors(links, patient):
    page = patient.get(page_url(links["pain_nrs"], 1))
    html, text = page.content.decode(), text_of(page)
    assert re.findall(r'type="radio" name="pain" id="[^"]+" value="(\d+)"', html) == [
        str(n) for n in range(11)
    ]
    assert "0 = No pain" in text and "10 = Worst pain imaginable" in text
    # The ends' words are read with their numbers.
    assert re.search(
        r'value="0"[^>]*>\s*<span class="nrs-number">0</span><span class="visually-hidden">: No pain', html
    )


def test_visual_analogue_scale_offers_a_number_without_javascript_and_a_slider_with_it(links, patient):
    html = patient.get(page_url(links["activity_vas"], 1)).content.decode()
    number = re.search(r'<input[^>]*type="number"[^>]*>', html).group(0)
    assert 'name="activity"' in number and 'min="0"' in number and 'max="100"' in number
    # The slider is revealed by the script and carries no name: untouched, it answers nothing.
    slider = re.search(r'<input[^>]*type="range"[^>]*>', html, flags=re.S).group(0)
    assert "name=" not in slider
    assert re.search(r'<div class="vas-slider" data-vas-slider hidden>', html)
    assert "Not active at all" in html and "Extremely active" in html


def test_haq_aids_and_help_questions_come_under_each_category(links, patient):
    for number, section in enumerate(HAQ.sections, start=1):
        text = text_of(patient.get(page_url(links["haq_di"], number)))
        last_item = str(section.items[-3].text)  # the category's last activity
        positions = [
            text.index(last_item),
            text.index("Aids, devices and help"),
            text.index("Do you usually use aids or devices for these activities?"),
            text.index("Do you usually need help from another person for these activities?"),
        ]
        assert positions == sorted(positions), section.code
        assert text.index(str(section.title)) < positions[0]


# --- Saving as the patient goes, and resuming ------------------------------------------------------


def test_next_saves_the_page_and_goes_to_the_next_one(links, patient):
    token = links["haq_di"]
    patient.get(start_url(token))
    response = post_page(patient, token, 1, HAQ_PAGES["dressing"], action="next")
    assert response.status_code == 302 and response["Location"] == page_url(token, 2)
    haq = invitation_of("haq_di")
    assert saved(haq) == HAQ_PAGES["dressing"]
    assert haq.status == InvitationStatus.IN_PROGRESS
    # Audited with the patient's invitation as the actor.
    events = event_model_for(Response).objects.filter(pgh_obj_id=haq.response.pk)
    assert events.exists()
    assert {event.pgh_context["actor"] for event in events} == {f"patient via invitation {haq.pk}"}


def test_back_also_saves_the_page(links, patient):
    token = links["haq_di"]
    response = post_page(patient, token, 2, HAQ_PAGES["arising"], action="back")
    assert response["Location"] == page_url(token, 1)
    assert saved(invitation_of("haq_di")) == HAQ_PAGES["arising"]


def test_reopening_the_link_resumes_at_the_first_unanswered_page_with_answers_kept(
    links, patient, new_address
):
    token = links["haq_di"]
    for number, code in enumerate(["dressing", "arising", "eating", "walking"], start=1):
        post_page(patient, token, number, HAQ_PAGES[code])
    # Another day, another browser: only the link.
    again = Client(REMOTE_ADDR=new_address())
    response = again.get(start_url(token))
    assert response.status_code == 302 and response["Location"] == page_url(token, 5)
    page = again.get(response["Location"])
    assert "Welcome back" in text_of(page)
    assert "Page 5 of 8" in text_of(page)
    # Earlier pages show the saved answers.
    html = again.get(page_url(token, 3)).content.decode()
    assert re.search(r'name="eating_2" id="q-eating_2-2" value="2" checked', html)
    assert not re.search(r'name="eating_2" id="q-eating_2-1" value="1" checked', html)


def test_a_page_left_unanswered_is_where_the_patient_resumes(links, patient):
    token = links["haq_di"]
    post_page(patient, token, 1, HAQ_PAGES["dressing"])
    post_page(patient, token, 2, {"arising_1": 1})  # one of two answered
    post_page(patient, token, 3, HAQ_PAGES["eating"])
    assert patient.get(start_url(token))["Location"] == page_url(token, 2)


def test_an_emptied_answer_is_cleared(links, patient):
    token = links["activity_vas"]
    post_page(patient, token, 1, {"activity": 40}, section="activity")
    assert saved(invitation_of("activity_vas")) == {"activity": 40}
    post_page(patient, token, 1, {"activity": ""}, section="activity")
    assert saved(invitation_of("activity_vas")) == {}


# --- Review, submit, thank-you ---------------------------------------------------------------------


def test_review_lists_every_answer_and_names_the_missing_required_ones(links, patient):
    token = links["haq_di"]
    for number, code in enumerate(HAQ_PAGES, start=1):
        if code != "grip":
            post_page(patient, token, number, HAQ_PAGES[code])
    post_page(patient, token, 7, {"grip_1": 2})
    review = patient.get(review_url(token))
    text, html = text_of(review), review.content.decode()
    assert "2 questions are not answered yet" in text
    missing = re.search(r'data-testid="missing">(.*?)</section>', html, flags=re.S).group(1)
    assert "Open jars which have been previously opened?" in missing
    assert "Turn faucets on and off?" in missing
    assert "Open car doors?" not in missing
    assert f'href="{page_url(token, 7)}?from=review#q-grip_2"' in missing
    # Every answer in words, with a change link.
    row = re.search(r'data-item="eating_2">(.*?)</div>', html, flags=re.S).group(1)
    assert "With much difficulty" in row and "Change" in row
    row = re.search(r'data-item="dressing_aids">(.*?)</div>', html, flags=re.S).group(1)
    assert "Yes" in row
    # Sending now is refused with a message; nothing is lost.
    refused = patient.post(review_url(token))
    assert refused.status_code == 200
    assert 'role="alert"' in refused.content.decode()
    assert "Some questions are not answered yet" in text_of(refused)
    haq = invitation_of("haq_di")
    assert haq.status == InvitationStatus.IN_PROGRESS
    assert saved(haq)["grip_1"] == 2


def test_a_change_from_the_review_returns_to_the_review(links, patient):
    token = links["haq_di"]
    page = patient.get(page_url(token, 3) + "?from=review")
    assert "Save and go back to the review" in text_of(page)
    response = post_page(patient, token, 3, HAQ_PAGES["eating"], **{"from": "review"})
    assert response["Location"] == review_url(token)


def test_submit_stores_the_score_and_thanks_the_patient(links, patient, new_address):
    token = links["haq_di"]
    for number, code in enumerate(HAQ_PAGES, start=1):
        response = post_page(patient, token, number, HAQ_PAGES[code])
    assert response["Location"] == review_url(token)  # the last page's Next goes to the review
    assert "Every question is answered" in text_of(patient.get(review_url(token)))
    response = patient.post(review_url(token))
    assert response.status_code == 302 and response["Location"] == thanks_url(token)
    thanks = patient.get(thanks_url(token))
    assert thanks.status_code == 200
    assert "Thank you" in text_of(thanks)
    assert "have been sent to the study team" in text_of(thanks)

    haq = invitation_of("haq_di")
    assert haq.status == InvitationStatus.COMPLETED and haq.completed_at == NOW
    score = Score.objects.get(response__invitation=haq, name="haq_di")
    assert score.value == Decimal("1.375") and score.instrument_version == HAQ.version
    assert not Reminder.objects.filter(invitation=haq, state=ReminderState.PENDING).exists()

    # The link now says "already completed", to this browser and to any other.
    for client in (patient, Client(REMOTE_ADDR=new_address())):
        again = client.get(start_url(token))
        assert again.status_code == 410
        assert "This questionnaire is already completed" in text_of(again)
    other = Client(REMOTE_ADDR=new_address()).get(thanks_url(token))
    assert other.status_code == 410 and "already completed" in text_of(other)


def test_thanks_before_submitting_goes_back_to_the_questionnaire(links, patient):
    token = links["pain_nrs"]
    response = patient.get(thanks_url(token))
    assert response.status_code == 302 and response["Location"] == start_url(token)


# --- Links that cannot be used ---------------------------------------------------------------------


def contact_shown(response) -> bool:
    return "research@example.org" in response.content.decode()


def test_a_used_link_says_already_completed_with_the_sites_contact(links, patient):
    pain = invitation_of("pain_nrs")
    invitations.response_save_answers(invitation=pain, answers={"pain": 3})
    invitations.response_submit(invitation=pain)
    response = patient.get(start_url(links["pain_nrs"]))
    assert response.status_code == 410
    assert "This questionnaire is already completed" in text_of(response)
    assert contact_shown(response)


def test_an_expired_link_says_so_with_the_sites_contact(links, patient):
    with time_machine.travel(dt.datetime(2026, 11, 11, 15, 0, tzinfo=UTC), tick=False):
        response = patient.get(start_url(links["haq_di"]))
    assert response.status_code == 410
    assert "This link has expired" in text_of(response)
    assert "could be answered until 10 November 2026" in text_of(response)
    assert contact_shown(response)


def test_a_revoked_link_says_so_with_the_sites_contact(links, patient, coordinator):
    invitations.invitation_revoke(actor=coordinator, invitation=invitation_of("ptga"), reason="sent twice")
    response = patient.get(start_url(links["ptga"]))
    assert response.status_code == 410
    assert "This link is no longer active" in text_of(response)
    assert contact_shown(response)


def test_a_link_opened_early_says_when_it_opens_in_the_patients_time(links, patient):
    with time_machine.travel(dt.datetime(2026, 11, 3, 13, 0, tzinfo=UTC), tick=False):
        response = patient.get(start_url(links["haq_di"]))
    assert response.status_code == 200
    text = text_of(response)
    assert "This questionnaire is not open yet" in text
    assert "from Tuesday 3 November 2026 at 09:00" in text  # 14:00 UTC in New York
    assert contact_shown(response)
    assert invitation_of("haq_di").opened_at is None


@pytest.mark.parametrize("token", ["A" * 43, "x", "A" * 500, "%3Cscript%3E", "A%00B"])
def test_an_unknown_link_gets_one_generic_page_that_names_no_one(token, links, patient, participant):
    response = patient.get(f"/q/{token}/")
    assert response.status_code == 404
    text = text_of(response)
    assert "We could not open this questionnaire" in text
    for revealing in ("research@example.org", participant.site.name, participant.study_id, "Jane", "Doe"):
        assert revealing not in response.content.decode()
    # The same page for every unknown link, and for its inner pages.
    reference = text_of(patient.get("/q/" + "B" * 43 + "/"))
    assert text == reference
    assert text_of(patient.get(f"/q/{'C' * 43}/3/")) == reference


# --- Headers ------------------------------------------------------------------------------------


def assert_patient_headers(response):
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    assert "noindex" in response["X-Robots-Tag"]


def test_every_patient_page_is_sent_with_the_privacy_headers(links, patient, settings, new_address):
    token = links["pain_nrs"]
    pages = [
        patient.get(start_url(token)),
        patient.get(page_url(token, 1)),
        post_page(patient, token, 1, {"pain": "11"}, section="pain"),  # an error
        post_page(patient, token, 1, {"pain": "4"}, section="pain"),  # a redirect
        patient.get(review_url(token)),
        patient.post(review_url(token)),
        patient.get(thanks_url(token)),
        patient.get(start_url(token)),  # used
        patient.get(start_url("D" * 43)),  # unknown
    ]
    assert [p.status_code for p in pages] == [200, 200, 200, 302, 200, 302, 200, 410, 404]
    settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT = 1
    settings.QUESTIONNAIRE_BAD_TOKEN_DELAY = dt.timedelta(0)
    pages.append(patient.get(start_url("E" * 43)))
    assert pages[-1].status_code == 429
    csrf_client = Client(enforce_csrf_checks=True, REMOTE_ADDR=new_address())
    pages.append(csrf_client.post(page_url(links["haq_di"], 1), {"section": "dressing"}))
    assert pages[-1].status_code == 403
    for response in pages:
        assert_patient_headers(response)


def test_a_form_posted_without_its_security_token_gets_a_patient_page(links, new_address):
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=new_address())
    token = links["haq_di"]
    response = client.post(page_url(token, 1), {"section": "dressing", "dressing_1": "1"})
    assert response.status_code == 403
    assert "This page could not be saved" in text_of(response)
    assert f'href="{start_url(token)}"' in response.content.decode()
    assert "Sign in" not in text_of(response)
    assert saved(invitation_of("haq_di")) == {}
    # With the cookie from the first page, the same form is accepted.
    page = client.get(page_url(token, 1))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    response = client.post(
        page_url(token, 1), {"section": "dressing", "dressing_1": "1", "csrfmiddlewaretoken": csrf}
    )
    assert response.status_code == 302
    assert saved(invitation_of("haq_di")) == {"dressing_1": 1}


def test_forms_work_in_a_browser_that_sends_no_referrer(links, new_address):
    """Under `Referrer-Policy: no-referrer` a browser posts over HTTPS with `Origin: null` and no
    Referer; the form must still be accepted, while a post from another site is not."""
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=new_address())
    token = links["haq_di"]
    page = client.get(page_url(token, 1), secure=True)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    data = {"section": "dressing", "dressing_1": "2", "csrfmiddlewaretoken": csrf}
    accepted = client.post(page_url(token, 1), data, secure=True, headers={"origin": "null"})
    assert accepted.status_code == 302
    assert saved(invitation_of("haq_di")) == {"dressing_1": 2}
    foreign = client.post(
        page_url(token, 1),
        {**data, "dressing_1": "3"},
        secure=True,
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    assert saved(invitation_of("haq_di")) == {"dressing_1": 2}


# --- Unknown links: slowed, then blocked -----------------------------------------------------------


@pytest.fixture
def small_limit(settings):
    settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT = 4
    settings.QUESTIONNAIRE_BAD_TOKEN_WINDOW = dt.timedelta(minutes=10)
    settings.QUESTIONNAIRE_BAD_TOKEN_DELAY = dt.timedelta(0)
    return settings


def guess() -> str:
    return start_url(secrets.token_urlsafe(32))


def test_an_address_trying_unknown_links_is_blocked_and_others_are_not(small_limit, links, new_address):
    guesser = Client(REMOTE_ADDR=new_address())
    assert [guesser.get(guess()).status_code for _ in range(4)] == [404] * 4
    blocked = guesser.get(guess())
    assert blocked.status_code == 429
    assert "Too many attempts" in text_of(blocked)
    assert "try again later, in about 10 minutes" in text_of(blocked)
    assert blocked["Retry-After"] == "600"
    # Even a good link from that address is refused: the answer would tell a guesser it exists.
    assert guesser.get(start_url(links["pain_nrs"])).status_code == 429
    # Another address is unaffected.
    other = Client(REMOTE_ADDR=new_address())
    assert other.get(start_url(links["pain_nrs"])).status_code == 200
    assert other.get(guess()).status_code == 404


def test_good_links_are_not_counted(small_limit, links, patient):
    for _ in range(10):
        assert patient.get(start_url(links["pain_nrs"])).status_code == 200
        assert patient.get(page_url(links["pain_nrs"], 1)).status_code == 200
    assert patient.get(guess()).status_code == 404


def test_unknown_links_are_answered_late_past_half_the_limit(settings, new_address):
    settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT = 4
    settings.QUESTIONNAIRE_BAD_TOKEN_DELAY = dt.timedelta(milliseconds=400)
    # The process's first page pays for loading templates (over 1 s on a busy machine): not timed.
    assert Client(REMOTE_ADDR=new_address()).get(guess()).status_code == 404
    guesser = Client(REMOTE_ADDR=new_address())
    durations = []
    for _ in range(4):
        started = time.perf_counter()
        assert guesser.get(guess()).status_code == 404
        durations.append(time.perf_counter() - started)
    assert all(d < 0.4 for d in durations[:2]), durations
    assert all(d >= 0.4 for d in durations[2:]), durations


def test_behind_the_proxy_each_patient_is_counted_by_the_address_the_proxy_saw(small_limit, new_address):
    small_limit.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    proxy = new_address()
    first, second = new_address(), new_address()
    guesser = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {first}")
    for _ in range(4):
        guesser.get(guess())
    assert guesser.get(guess()).status_code == 429
    # A patient behind the same proxy, and a forged first entry, do not share the count.
    neighbour = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"{first}, {second}")
    assert neighbour.get(guess()).status_code == 404


# --- Bad input: a message, nothing lost, never a 500 -----------------------------------------------


@pytest.fixture
def started_haq(links, patient):
    token = links["haq_di"]
    post_page(patient, token, 1, HAQ_PAGES["dressing"])
    post_page(patient, token, 2, HAQ_PAGES["arising"])
    return token


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"section": "dressing", "dressing_1": "7"}, "Choose one of the answers shown."),
        ({"section": "dressing", "dressing_1": "one"}, "Choose one of the answers shown."),
        ({"section": "dressing", "dressing_aids": "maybe"}, "Choose one of the answers shown."),
        ({"section": "dressing", "dressing_1": "1" * 5000}, "Choose one of the answers shown."),
        ({"section": "arising", "arising_1": "3"}, "This page was out of date, so nothing on it was saved"),
        ({"section": "<script>", "dressing_1": "3"}, "This page was out of date, so nothing on it was saved"),
        ({"dressing_1": "3"}, "This page was out of date, so nothing on it was saved"),
    ],
)
def test_bad_input_on_a_page_is_named_and_nothing_is_lost(started_haq, patient, data, message):
    before = saved(invitation_of("haq_di"))
    response = patient.post(page_url(started_haq, 1), data)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in text_of(response)
    assert 'role="alert"' in html
    assert saved(invitation_of("haq_di")) == before
    if "out of date" not in message:
        # The question with the problem is named in the summary and linked to.
        assert re.search(r'href="#q-dressing_(1|aids)"', html)
        assert re.search(r'aria-describedby="q-dressing_(1|aids)-error"', html)
    else:
        # The page shows what is saved, not what was posted.
        assert re.search(r'name="dressing_1" id="q-dressing_1-1" value="1" checked', html)


@pytest.mark.parametrize("value", ["abc", "-1", "101", "4.5", "1e3"])
def test_a_number_outside_the_scale_is_named_and_nothing_is_lost(links, patient, value):
    token = links["activity_vas"]
    post_page(patient, token, 1, {"activity": 35}, section="activity")
    response = post_page(patient, token, 1, {"activity": value}, section="activity")
    assert response.status_code == 200
    assert "Enter a whole number from 0 to 100." in text_of(response)
    assert saved(invitation_of("activity_vas")) == {"activity": 35}


def test_an_answer_posted_after_completion_is_refused_with_a_clear_page(links, patient):
    token = links["pain_nrs"]
    post_page(patient, token, 1, {"pain": 5}, section="pain")
    assert patient.post(review_url(token)).status_code == 302
    late = post_page(patient, token, 1, {"pain": 9}, section="pain")
    assert late.status_code == 410
    assert "This questionnaire is already completed" in text_of(late)
    assert patient.post(review_url(token)).status_code == 410
    assert saved(invitation_of("pain_nrs")) == {"pain": 5}
    assert Score.objects.get(name="pain_nrs").value == 5


def test_a_page_that_does_not_exist_leads_back_to_the_questionnaire(links, patient):
    token = links["pain_nrs"]
    assert patient.get(page_url(token, 9))["Location"] == start_url(token)
    assert patient.post(page_url(token, 0), {"section": "pain", "pain": "1"})["Location"] == start_url(token)
    assert saved(invitation_of("pain_nrs")) == {}


def test_other_methods_are_refused_without_an_error(links, patient):
    response = patient.put(start_url(links["pain_nrs"]))
    assert response.status_code == 405
    assert_patient_headers(response)


# --- A staff session in the same browser changes nothing (issue #10) ------------------------------


def staff_browser(user, new_address, *, second_factor: bool = True) -> Client:
    """A browser with a staff session: both factors passed, or only the password."""
    browser = Client(REMOTE_ADDR=new_address())
    if second_factor:
        return sign_in(browser, user)
    browser.force_login(user)  # the password step, and no second factor yet
    assert browser.get("/")["Location"].startswith("/account/two-factor/")
    return browser


def test_a_half_signed_in_browser_gets_the_patient_pages_not_the_second_factor(
    links, coordinator, new_address
):
    """Was: a staff member who had given the password but not the code was sent to the two-factor
    page by every patient link opened in that browser."""
    browser = staff_browser(coordinator, new_address, second_factor=False)
    token = links["haq_di"]
    start = browser.get(start_url(token))
    assert start.status_code == 200 and "Start" in text_of(start)
    response = post_page(browser, token, 1, HAQ_PAGES["dressing"])
    assert response.status_code == 302 and response["Location"] == page_url(token, 2)
    assert saved(invitation_of("haq_di")) == HAQ_PAGES["dressing"]
    assert browser.get(review_url(token)).status_code == 200
    # The staff session is as it was: still waiting for the second factor.
    assert browser.get("/")["Location"].startswith("/account/two-factor/")


def test_an_expired_staff_session_does_not_sign_the_patient_page_out(links, coordinator, new_address):
    browser = staff_browser(coordinator, new_address)
    assert browser.get("/").status_code == 200
    with time_machine.travel(NOW + dt.timedelta(hours=2), tick=False):  # past the 30-minute idle limit
        assert browser.get(start_url(links["pain_nrs"])).status_code == 200
        assert browser.get("/")["Location"].startswith("/account/login/")


def test_nothing_of_a_staff_session_reaches_the_patient_pages(links, participant, coordinator, new_address):
    """A coordinator's browser: the patient's answers are not the coordinator's in the audit
    trail, the patient page names no staff member and shows no staff message, and the patient's
    messages do not appear on the staff pages."""
    browser = staff_browser(coordinator, new_address)
    token = links["haq_di"]
    post_page(browser, token, 1, HAQ_PAGES["dressing"])
    haq = invitation_of("haq_di")
    events = event_model_for(Response).objects.filter(pgh_obj_id=haq.response.pk)
    assert events.exists()
    for event in events:
        assert event.pgh_context["actor"] == f"patient via invitation {haq.pk}"
        assert event.pgh_context.get("user") is None and event.pgh_context.get("site") is None

    # A staff message waiting for the next staff page: "Now working in site ...".
    site = participant.site
    chosen = browser.post(reverse("site-select"), {"site": site.pk, "next": reverse("site-list")})
    assert chosen.status_code == 302
    staff_message = f"Now working in site {site}"

    page = browser.get(start_url(token), follow=True)  # "Welcome back" and the page to resume
    assert page.status_code == 200
    text = text_of(page)
    assert "Welcome back" in text
    assert staff_message not in text
    for staff_detail in (coordinator.full_name, coordinator.email, "Sign out"):
        assert staff_detail not in text
    staff_page = text_of(browser.get(chosen["Location"]))
    assert staff_message in staff_page
    assert "Welcome back" not in staff_page
