"""Concurrent edits (issue #10 item 2): two people save the same form at the same moment, 100
times. Each time exactly one save wins, the other gets the conflict page with their input kept,
the audit trail gains one change per win, and no update is lost.

Two HTTP clients (each signed in as a different coordinator) drive the live server over real
HTTP: both open the form, then post it from two threads released together by a barrier. The
forms are read from the pages and posted as a browser would (lxml's form values).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import lxml.html
import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from lesions import services as lesion_services
from lesions.models import Injection, UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import safety, services
from participants.models import AEReview
from tests.conftest import sign_in
from tests.lesions.conftest import injection, measurement
from tests.participants.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    screen,
)
from trial.audit import event_model_for
from trial.concurrency import CONFLICT_MESSAGE
from trial.roles import Role

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 100
RESAVE_EVERY = 10  # every 10th round the loser saves the conflict page again, and wins
RESAVES = len(range(0, ROUNDS, RESAVE_EVERY))
CONFLICT_TEXT = str(CONFLICT_MESSAGE).split(".")[0]


# --- Two people at two browsers --------------------------------------------------------------


@pytest.fixture
def browsers(live_server, coordinator, make_user, site_a) -> Iterator[list[httpx.Client]]:  # noqa: F811
    second = make_user(role=Role.COORDINATOR, sites=[site_a], full_name="Chris Coordinator")
    clients = []
    for user in (coordinator, second):
        session = sign_in(Client(), user).cookies[settings.SESSION_COOKIE_NAME].value
        clients.append(
            httpx.Client(
                base_url=live_server.url, cookies={settings.SESSION_COOKIE_NAME: session}, timeout=60
            )
        )
    yield clients
    for client in clients:
        client.close()


def opened(client: httpx.Client, url: str, form_xpath: str) -> dict[str, list[str]]:
    """The values the page's form would post, as a browser sends them."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    return form_values(page.text, form_xpath)


def form_values(html: str, form_xpath: str) -> dict[str, list[str]]:
    (form,) = lxml.html.fromstring(html).xpath(form_xpath)
    values: dict[str, list[str]] = {}
    for name, value in form.form_values():
        values.setdefault(name, []).append(value)
    # As a browser: a newline right after <textarea> is not part of the value (HTML 13.2.6.4.7)
    for field in form.xpath(".//textarea[@name and not(@disabled)]"):
        values[field.name] = [field.value[1:] if field.value.startswith("\n") else field.value]
    # ... and an empty text input has no value attribute: lxml leaves it out, a browser sends "".
    for field in form.xpath(".//input[@name and not(@value) and not(@disabled)]"):
        if not field.checkable and field.type not in ("submit", "image", "reset", "file"):
            values.setdefault(field.name, [""])
    return values


def post_together(clients: list[httpx.Client], url: str, forms: list[dict]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(clients))
    responses: list[httpx.Response | None] = [None] * len(clients)

    def save(n: int) -> None:
        barrier.wait(timeout=30)
        responses[n] = clients[n].post(url, data=forms[n])

    threads = [threading.Thread(target=save, args=(n,)) for n in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    return responses


def messages_on(html: str) -> list[str]:
    """The errors and alerts a page shows (for failure messages)."""
    found = lxml.html.fromstring(html).xpath(
        "//*[contains(@class, 'alert') or contains(@class, 'invalid-feedback') or contains(@class, 'errorlist')]"
    )
    return [" ".join(element.text_content().split()) for element in found]


def audit_events(*records) -> int:
    return sum(
        event_model_for(type(record)).objects.filter(pgh_obj_id=record.pk, pgh_label="update").count()
        for record in records
    )


@dataclass
class Scenario:
    url: str
    form_xpath: str
    records: Callable[[], tuple]  # the saved rows the form edits, fresh from the database
    enter: Callable[[dict, int, int], None]  # fills in the form in round r as person n
    read: Callable[[dict], object]  # the entry a form holds
    saved: Callable[[], object]  # the entry as saved now, comparable with `read`


def race(browsers: list[httpx.Client], scenario: Scenario, *, resave: bool = True) -> dict:
    """ROUNDS times: both open the form, both save at once. Returns what happened."""
    tally = {"rounds": 0, "one_winner": 0, "conflict_pages": 0, "resaves": 0}
    for round_number in range(ROUNDS):
        versions_before = [record.row_version for record in scenario.records()]
        events_before = audit_events(*scenario.records())
        forms = [opened(client, scenario.url, scenario.form_xpath) for client in browsers]
        for n, form in enumerate(forms):
            scenario.enter(form, round_number, n)
        entries = [scenario.read(form) for form in forms]
        assert entries[0] != entries[1] and scenario.saved() not in entries

        responses = post_together(browsers, scenario.url, forms)

        codes = sorted(response.status_code for response in responses)
        assert codes == [200, 302], (round_number, codes)
        winner = next(n for n, response in enumerate(responses) if response.status_code == 302)
        loser = 1 - winner
        page = responses[loser].text
        assert CONFLICT_TEXT in page, (round_number, messages_on(page))
        tally["one_winner"] += 1
        # The loser's input is on the conflict page, ready to save again.
        kept = form_values(page, scenario.form_xpath)
        assert scenario.read(kept) == entries[loser], round_number
        tally["conflict_pages"] += 1
        # One save won: its entry is what is saved, each row moved on one version, one audit
        # event per row it changed - and the loser wrote nothing.
        assert scenario.saved() == entries[winner], round_number
        assert [record.row_version for record in scenario.records()] == [v + 1 for v in versions_before]
        assert audit_events(*scenario.records()) == events_before + len(versions_before)
        tally["rounds"] += 1
        if resave and round_number % RESAVE_EVERY == 0:
            again = browsers[loser].post(scenario.url, data=kept)
            assert again.status_code == 302, messages_on(again.text)
            assert scenario.saved() == entries[loser]
            assert audit_events(*scenario.records()) == events_before + 2 * len(versions_before)
            tally["resaves"] += 1
    return tally


def set_field(form: dict, name: str, value: str) -> None:
    assert name in form, " ".join(sorted(form))
    form[name] = [value]


# --- The records -----------------------------------------------------------------------------


@pytest.fixture
def participant(consented, coordinator):  # noqa: F811
    return services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


@pytest.fixture
def lesion(participant, coordinator):  # noqa: F811
    return lesion_services.lesion_add(
        actor=coordinator,
        participant=participant,
        label="L1",
        anatomical_site="elbow",
        laterality="left",
        first_seen_on=TODAY,
    )


def test_the_measurement_and_injection_table(browsers, participant, lesion, coordinator):  # noqa: F811
    visit = participant.visits.get(code="W0")
    safety.pregnancy_test_record(  # the injection's gate
        actor=coordinator, participant=participant, test_type="urine_hcg", test_date=TODAY, result="negative"
    )
    visit_lesions_save(
        actor=coordinator,
        visit=visit,
        rows=[LesionRow(lesion, measurement=measurement("10.0"), injection=injection("1.00"))],
    )

    def records():
        return (UltrasoundMeasurement.objects.get(), Injection.objects.get())

    def enter(form, round_number, n):
        # Different in each round and for each person: the length and the pain score.
        set_field(form, "rows-0-length_mm", f"{10 + round_number % 40}.{n + 1}")
        set_field(form, "rows-0-immediate_pain", str((round_number + 5 * n + 1) % 11))
        set_field(form, "table-reason", f"corrected by person {n}")

    def read(form):
        return (form["rows-0-length_mm"][0], form["rows-0-immediate_pain"][0])

    def saved():
        m, i = records()
        return (f"{m.length_mm:.1f}", str(i.immediate_pain))

    tally = race(
        browsers,
        Scenario(
            url=reverse("lesions:visit-table", args=[visit.pk]),
            form_xpath="//form[.//input[@name='rows-TOTAL_FORMS']]",
            records=records,
            enter=enter,
            read=read,
            saved=saved,
        ),
    )
    assert tally == {"rounds": ROUNDS, "one_winner": ROUNDS, "conflict_pages": ROUNDS, "resaves": RESAVES}


def text_field_race(browsers, record, *, url: str, form_xpath: str, field: str) -> dict:
    """Both people correct the same text field of `record`, with a reason."""
    model = type(record)

    def enter(form, round_number, n):
        set_field(form, field, f"round {round_number}, person {n}")
        set_field(form, "reason", f"corrected by person {n}")

    return race(
        browsers,
        Scenario(
            url=url,
            form_xpath=form_xpath,
            records=lambda: (model.objects.get(pk=record.pk),),
            enter=enter,
            read=lambda form: form[field][0],
            saved=lambda: getattr(model.objects.get(pk=record.pk), field),
        ),
    )


def test_the_lesion_registry_form(browsers, lesion):
    tally = text_field_race(
        browsers,
        lesion,
        url=reverse("lesions:lesion-edit", args=[lesion.pk]),
        form_xpath="//form[@data-lesion-form]",
        field="site_detail",
    )
    assert tally == {"rounds": ROUNDS, "one_winner": ROUNDS, "conflict_pages": ROUNDS, "resaves": RESAVES}


def test_the_adverse_event_form(browsers, participant, coordinator):  # noqa: F811
    event = safety.adverse_event_record(
        actor=coordinator,
        participant=participant,
        values={
            "term_code": "injection_site_pain",
            "ctcae_version": "5.0",
            "grade": 2,
            "related_to_sts": "possible",
            "related_to_procedure": "probable",
            "onset_date": "2026-11-02",
            "outcome": "recovering",
            "action_taken": "none",
        },
    )
    tally = text_field_race(
        browsers,
        event,
        url=reverse("participants:adverse-event-edit", args=[event.pk]),
        form_xpath="//form[@id='adverse-event-form']",
        field="description",
    )
    assert tally == {"rounds": ROUNDS, "one_winner": ROUNDS, "conflict_pages": ROUNDS, "resaves": RESAVES}


def test_the_visit_adverse_event_review_form(browsers, participant, coordinator):  # noqa: F811
    visit = participant.visits.get(code="W0")
    safety.ae_review_record(actor=coordinator, visit=visit, new_events=False)

    def enter(form, round_number, n):
        # Both people change the saved answer (the only other one there is); their reasons differ.
        answer = "no" if AEReview.objects.get(visit=visit).new_events else "yes"
        set_field(form, "new_events", answer)
        set_field(form, "reason", f"round {round_number}: asked again by person {n}")

    def read(form):
        return (form["new_events"][0], form["reason"][0])

    def saved():
        review = AEReview.objects.get(visit=visit)
        latest = event_model_for(AEReview).objects.filter(pgh_obj_id=review.pk).order_by("-pgh_id").first()
        return ("yes" if review.new_events else "no", latest.pgh_context["reason"])

    tally = race(
        browsers,
        Scenario(
            url=reverse("participants:visit-ae-review", args=[visit.pk]),
            form_xpath="//form[.//input[@name='new_events']]",
            records=lambda: (AEReview.objects.get(visit=visit),),
            enter=enter,
            read=read,
            saved=saved,
        ),
        resave=False,  # saving the loser's same answer again changes nothing
    )
    assert tally == {"rounds": ROUNDS, "one_winner": ROUNDS, "conflict_pages": ROUNDS, "resaves": 0}
