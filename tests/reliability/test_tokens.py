"""Issue #10 item 3, questionnaire links: every link that cannot be used is refused with a patient's
page, and no page tells a guesser whether a participant exists.

What a page may reveal, and why:
- A link nobody was sent (random, truncated, extended, case-changed, one character changed) gets
  one page: the same status and the same bytes for every such token, naming no participant, site
  or study id. Tokens are 256-bit random values looked up by SHA-256, so a token derived from a real
  one is as unknown as a random one: nothing distinguishes "near a real link" from "nowhere near".
- A real link that can no longer be used (completed, expired, revoked) gets the friendly page of
  its kind with the site's contact, status 410. That tells the holder the link once worked, which
  only the person who received the e-mail can learn: reaching that page needs the whole secret.
  It still names no participant (no name, study id or e-mail address).
- A browser that completed one participant's questionnaire gets no thank-you page for another's
  completed link: the used-link page instead (the thank-you is for the browser that submitted).
"""

from __future__ import annotations

import datetime as dt
import re
import string

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from pro_measures import invitations
from pro_measures.models import Invitation, InvitationStatus, Response
from tests.participants.test_visit_views import enrol
from tests.pro_measures.conftest import (  # noqa: F401 - shared fixtures
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    participant,
    screen,
)
from tests.pro_measures.test_patient_pages import links, new_address  # noqa: F401 - shared fixtures
from tests.reliability.hostile import FUZZ

PATIENT_BASE = "pro_measures/patient/base.html"


@pytest.fixture(autouse=True)
def no_throttle(settings):
    """Unknown links are counted per address and slowed past half the limit; that throttle has its
    own tests, and here every example must get the page itself, at once."""
    settings.QUESTIONNAIRE_BAD_TOKEN_LIMIT = 10**9


@pytest.fixture
def browser(new_address):  # noqa: F811
    return Client(REMOTE_ADDR=new_address())


def start(token: str) -> str:
    return reverse("pro_measures:questionnaire", args=[token])


def comparable(response) -> str:
    """The body with what differs per request by design (CSRF and CSP nonce values) removed."""
    body = response.content.decode()
    return re.sub(r'(nonce|value)="[^"]*"', r'\1=""', body)


def identifying_values(participant, *, site: bool = True) -> list[str]:  # noqa: F811
    screening = participant.screening
    values = [
        participant.study_id,
        screening.first_name,
        screening.last_name,
        screening.screening_number,
        participant.email,
        *((participant.site.name, participant.site.code) if site else ()),
    ]
    return [value for value in values if value]


def assert_patient_page(response):
    assert PATIENT_BASE in [template.name for template in response.templates]
    assert response["Referrer-Policy"] == "no-referrer" and response["Cache-Control"] == "no-store"
    assert "Sign in" not in response.content.decode()


def unknown_reference(browser) -> tuple[int, str]:
    response = browser.get(start("not-a-link-anyone-was-sent"))
    assert_patient_page(response)
    return response.status_code, comparable(response)


def variants(token: str) -> dict[str, str]:
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return {
        "truncated by one": token[:-1],
        "truncated by half": token[: len(token) // 2],
        "extended": token + "x",
        "doubled": token * 2,
        "upper case": token.upper(),
        "lower case": token.lower(),
        "swapped case": token.swapcase(),
        "last character changed": flipped,
        "with a space": token + " ",
        "percent-encoded noise": token + "%00",
    }


def test_tokens_near_a_real_one_get_the_same_page_as_a_random_one(links, browser, participant):  # noqa: F811
    status, body = unknown_reference(browser)
    assert status == 404
    for value in identifying_values(participant):
        assert value not in body
    token = links["haq_di"]
    for kind, variant in variants(token).items():
        response = browser.get(start(variant))
        assert (response.status_code, comparable(response)) == (status, body), kind
    assert browser.get(start(token)).status_code == 200  # the real link itself still works


@FUZZ
@given(token=st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=300))
def test_random_tokens_all_get_one_page_that_names_nobody(token, links, browser, participant):  # noqa: F811
    status, body = unknown_reference(browser)
    for url in (start(token), reverse("pro_measures:questionnaire-page", args=[token, 1])):
        response = browser.get(url)
        assert (response.status_code, comparable(response)) == (status, body), url
        response = browser.post(url, {"section": "dressing", "dressing_1": "1"})
        assert (response.status_code, comparable(response)) == (status, body), url


@FUZZ
@given(token=st.text(string.ascii_letters + string.digits + "-_", min_size=43, max_size=43))
def test_well_formed_random_tokens_are_unknown_too(token, links, browser):  # noqa: F811
    status, body = unknown_reference(browser)
    response = browser.get(start(token))
    assert (response.status_code, comparable(response)) == (status, body)


def known_but_unusable_page(browser, token, participant) -> tuple[int, str]:  # noqa: F811
    response = browser.get(start(token))
    assert_patient_page(response)
    body = response.content.decode()
    for value in identifying_values(participant, site=False):  # no person; the site's contact is shown
        assert value not in body
    answers_page = browser.post(reverse("pro_measures:questionnaire-page", args=[token, 1]), {"pain": "3"})
    assert answers_page.status_code == response.status_code
    return response.status_code, response.content.decode()


def test_a_completed_link_is_refused_when_reused(links, browser, participant):  # noqa: F811
    token = links["pain_nrs"]
    page = reverse("pro_measures:questionnaire-page", args=[token, 1])
    assert browser.post(page, {"section": "pain", "pain": "4"}).status_code == 302
    assert browser.post(reverse("pro_measures:questionnaire-review", args=[token])).status_code == 302
    status, body = known_but_unusable_page(Client(), token, participant)
    assert status == 410 and "already completed" in body
    assert Response.objects.get(invitation__instrument_code="pain_nrs").answers == {"pain": 4}


def test_an_expired_link_is_refused(links, browser, participant):  # noqa: F811
    invitation = Invitation.objects.get(instrument_code="pain_nrs")
    with time_machine.travel(invitation.valid_until + dt.timedelta(minutes=1), tick=False):
        status, body = known_but_unusable_page(browser, links["pain_nrs"], participant)
    assert status == 410 and "expired" in body


def test_a_revoked_link_is_refused(links, browser, participant, coordinator):  # noqa: F811
    invitation = Invitation.objects.get(instrument_code="pain_nrs")
    invitations.invitation_revoke(actor=coordinator, invitation=invitation, reason="wrong address")
    status, body = known_but_unusable_page(browser, links["pain_nrs"], participant)
    assert status == 410 and "no longer active" in body


def test_another_participants_completed_link_gets_no_thank_you_in_this_browser(
    links,  # noqa: F811
    browser,
    participant,  # noqa: F811
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    consent_v1,  # noqa: F811
    site_a,
    new_address,  # noqa: F811
):
    other = enrol(coordinator=coordinator, investigator=investigator, document=consent_v1, site=site_a)
    invitations.invitations_plan_for_participant(participant_id=other.pk)
    theirs = Invitation.objects.get(participant=other, instrument_code="pain_nrs")
    their_token = invitations.link_create(theirs)
    their_phone = Client(REMOTE_ADDR=new_address())
    for client, token in ((browser, links["pain_nrs"]), (their_phone, their_token)):
        client.post(
            reverse("pro_measures:questionnaire-page", args=[token, 1]), {"section": "pain", "pain": "2"}
        )
        assert client.post(reverse("pro_measures:questionnaire-review", args=[token])).status_code == 302
    theirs.refresh_from_db()
    assert theirs.status == InvitationStatus.COMPLETED

    mine = browser.get(reverse("pro_measures:questionnaire-thanks", args=[links["pain_nrs"]]))
    assert mine.status_code == 200 and "pro_measures/patient/thanks.html" in [t.name for t in mine.templates]
    response = browser.get(reverse("pro_measures:questionnaire-thanks", args=[their_token]))
    assert response.status_code == 410
    assert_patient_page(response)
    assert "already completed" in response.content.decode()
    for value in identifying_values(other, site=False):
        assert value not in response.content.decode()
