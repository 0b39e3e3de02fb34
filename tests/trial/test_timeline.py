"""The participant's timeline on the read side: each visit's questionnaires with their state, and
the questionnaire scores per visit with the change from baseline, in a fixed number of queries."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from participants import services
from participants import visits as visit_services
from pro_measures import invitations, reminders
from pro_measures.models import Invitation
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
from tests.pro_measures.answers import HAQ_WORKED, complete_answers, invite
from trial.roles import Role

pytestmark = pytest.mark.django_db

UTC = dt.UTC


@pytest.fixture
def participant(consented, coordinator):  # noqa: F811
    return services.participant_enroll(
        actor=coordinator,
        screening=consented,
        enrolled_on=TODAY,
        email="jane@example.org",
        time_zone="America/New_York",
    )


def plan(participant) -> dict[str, Invitation]:
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    return {
        i.instrument_code: i
        for i in Invitation.objects.filter(participant=participant).order_by("visit__sequence")
    }


def paper(coordinator, invitation, answers, day=TODAY):  # noqa: F811
    return invitations.response_enter_paper(
        actor=coordinator, invitation=invitation, answers=answers, completed_on=day
    )


def page_of(client, participant) -> str:
    response = client.get(reverse("participant-timeline", args=[participant.pk]))
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def visit_row(page: str, code: str) -> str:
    return page.split(f'<tr data-visit="{code}">')[1].split("</tr> <tr")[0]


def state_of(row: str, code: str) -> str:
    return re.search(rf'data-questionnaire="{code}" data-state="(\w+)"', row).group(1)


def test_each_visit_shows_its_questionnaires_done_open_missing_or_expired(
    participant,
    coordinator,  # noqa: F811
    signed_in,
):
    w0 = plan(participant)
    reminders.reminders_send_due(now=dt.datetime(2026, 11, 3, 15, tzinfo=UTC))
    paper(coordinator, w0["haq_di"], dict(HAQ_WORKED))
    invitations.invitation_revoke(actor=coordinator, invitation=w0["cochin"], reason="hand surgery")
    visit_services.visit_miss(actor=coordinator, visit=participant.visits.get(code="W8"), reason="travelling")
    client = signed_in(coordinator)
    page = page_of(client, participant)
    row = visit_row(page, "W0")
    assert state_of(row, "haq_di") == "done" and state_of(row, "cochin") == "revoked"
    assert state_of(row, "pain_nrs") == "open" and "Calcinosis pain</a>: <span" in row and "(sent)" in row
    assert 'data-form="pros" data-progress="open"' in row and "(1 of 6 done)" in row
    list_url = reverse("pro_measures:invitation-list", args=[participant.pk])
    assert f'href="{list_url}#invitation-{w0["haq_di"].pk}"' in row
    assert f'href="{list_url}"' in page  # the participant's questionnaires page
    w4 = visit_row(page, "W4")
    # Before anything was sent the visit's summary says it all: no line per questionnaire.
    assert 'data-form="pros" data-progress="not_yet_due"' in w4 and "(0 of 6 done)" in w4
    assert "data-questionnaire=" not in w4
    assert 'data-form="pros" data-progress="visit_missed"' in visit_row(page, "W8")
    assert "Not yet available" not in page

    # After W0's window closed the unanswered ones are expired.
    with time_machine.travel(dt.datetime(2026, 11, 12, 15, tzinfo=UTC), tick=False):
        row = visit_row(page_of(signed_in(coordinator), participant), "W0")
    assert state_of(row, "pain_nrs") == "expired" and state_of(row, "haq_di") == "done"
    assert 'data-form="pros" data-progress="expired"' in row


def test_a_due_visit_without_invitations_shows_them_missing(
    participant,
    coordinator,  # noqa: F811
    signed_in,
):
    # No planning ran (e.g. the worker was down): W0's window is open, nothing was sent.
    row = visit_row(page_of(signed_in(coordinator), participant), "W0")
    assert 'data-form="pros" data-progress="missing"' in row and "(0 of 6 done)" in row


def test_timeline_shows_each_score_per_visit_with_the_change_from_baseline(
    participant,
    coordinator,  # noqa: F811
    signed_in,
):
    w0 = plan(participant)
    paper(coordinator, w0["pain_nrs"], {"pain": 7})
    paper(coordinator, w0["haq_di"], dict(HAQ_WORKED))  # 1.375
    paper(coordinator, w0["shaq_vas"], complete_answers("shaq_vas", vas=90))  # 90/150 x 3 = 1.8
    paper(coordinator, w0["ptga"], {"global": 5})
    with time_machine.travel(dt.datetime(2026, 11, 24, 15, tzinfo=UTC), tick=False):
        plan(participant)
        w4 = {i.instrument_code: i for i in Invitation.objects.filter(visit__code="W4")}
        day = dt.date(2026, 11, 24)
        paper(coordinator, w4["pain_nrs"], {"pain": 4}, day)
        paper(coordinator, w4["haq_di"], complete_answers("haq_di", choice=0), day)
        paper(coordinator, w4["shaq_vas"], complete_answers("shaq_vas", vas=45), day)
        paper(coordinator, w4["cochin"], complete_answers("cochin", choice=2), day)  # 18 x 2
        page = page_of(signed_in(coordinator), participant)
    table = page.split('id="score-change"')[1].split("</table>")[0]
    assert "with the absolute change from baseline" in table

    def cells(score: str, visit: str) -> list[str]:
        row = table.split(f'<tr data-score="{score}" data-visit="{visit}">')[1].split("</tr>")[0]
        return re.findall(r'<td class="text-end">(?:<span[^>]*>)?([^<]*)', row)

    assert cells("pain_nrs", "W0") == ["7", "baseline"]
    assert cells("pain_nrs", "W4") == ["4", "-3"]
    assert cells("haq_di", "W0") == ["1.375", "baseline"]
    assert cells("haq_di", "W4") == ["0", "-1.375"]
    assert cells("shaq_pain", "W0") == ["1.8", "baseline"]
    assert cells("shaq_pain", "W4") == ["0.9", "-0.9"]
    assert cells("ptga", "W0") == ["5", "baseline"] and 'data-score="ptga" data-visit="W4"' not in table
    # No score at baseline: shown, but no change can be given.
    assert cells("cochin", "W4") == ["36", "—"]
    haq_header = table.split('data-score="haq_di"')[1].split("</th>")[0]
    assert "HAQ-DI (0-3)" in haq_header and "lower is better" in haq_header


def test_monitor_reads_the_scores_and_an_administrator_may_not(
    participant,
    coordinator,  # noqa: F811
    make_user,
    site_a,
    site_b,
    signed_in,
):
    w0 = plan(participant)
    paper(coordinator, w0["pain_nrs"], {"pain": 7})
    page = page_of(signed_in(make_user(role=Role.MONITOR, sites=[site_a])), participant)
    assert 'data-score="pain_nrs" data-visit="W0"' in page
    url = reverse("participant-timeline", args=[participant.pk])
    assert signed_in(make_user(role=Role.ADMINISTRATOR, sites=[site_a])).get(url).status_code == 403
    assert signed_in(make_user(role=Role.COORDINATOR, sites=[site_b])).get(url).status_code == 404


def test_timeline_query_count_does_not_grow_with_visits_of_questionnaire_data(
    participant,
    coordinator,  # noqa: F811
    signed_in,
):
    client = signed_in(coordinator)
    url = reverse("participant-timeline", args=[participant.pk])

    def fill(visit):
        created = [invite(visit, code) for code in ("pain_nrs", "ptga", "haq_di", "cochin")]
        paper(coordinator, created[0], {"pain": 6})
        paper(coordinator, created[1], {"global": 4})
        paper(coordinator, created[2], complete_answers("haq_di", choice=1))
        invitations.invitation_revoke(actor=coordinator, invitation=created[3], reason="test")

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        body = response.content.decode()
        return len(ctx.captured_queries), body.count("data-score="), body.count('data-state="done"')

    fill(participant.visits.get(code="W0"))
    count()  # the first request after signing in does its own bookkeeping
    small = count()
    for _ in range(9):
        fill(
            visit_services.visit_add_unscheduled(
                actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
            )
        )
    large = count()
    assert (small[1:], large[1:]) == ((3, 3), (30, 30))
    assert small[0] == large[0]
