"""The screening log report: CONSORT-style counts, the log without names, and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from participants import services
from participants.models import WithdrawalScope
from tests.factories import ELIGIBLE_ANSWERS
from tests.participants.conftest import TODAY
from trial.roles import Role

pytestmark = pytest.mark.django_db

LOG_URL = reverse("participants:screening-log")
EIGHTEEN_TODAY = dt.date(2008, 11, 3)  # 18 on the screening date: not "over 18" (IN2)


def counts_on(html: str) -> dict[str, int]:
    """The participant-flow table as the page shows it: stage -> number of people."""
    return {
        stage: int(number)
        for stage, number in re.findall(
            r'data-count="([\w-]+)">.*?<td class="text-end">(\d+)</td>', html, re.S
        )
    }


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.reader(io.StringIO(response.content.decode())))


def fail(screening, coordinator, **answers):
    services.eligibility_record(
        actor=coordinator, screening=screening, answers={**ELIGIBLE_ANSWERS, **answers}
    )


def enroll(screening, coordinator, investigator, document):
    services.eligibility_record(actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
    services.eligibility_confirm(actor=investigator, screening=screening)
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=document,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    return services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)


@pytest.fixture
def population(screen, coordinator, investigator, consent_v1):
    """Three people screened: one fails IN2, one fails IN2 and IN5, one enrolled."""
    too_young = screen(first_name="Zebulon", last_name="Quackenbush", date_of_birth=EIGHTEEN_TODAY)
    fail(too_young, coordinator)
    too_young_no_need = screen(first_name="Philippa", last_name="Wolstenholme", date_of_birth=EIGHTEEN_TODAY)
    fail(too_young_no_need, coordinator, needs_symptomatic_relief=False)
    enrolled_screening = screen(first_name="Octavia", last_name="Fairweather-Smythe")
    participant = enroll(enrolled_screening, coordinator, investigator, consent_v1)
    return too_young, too_young_no_need, participant


NAMES = ("Zebulon", "Quackenbush", "Philippa", "Wolstenholme", "Octavia", "Fairweather")


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a], full_name="Morgan Monitor")


def test_counts_follow_the_consort_flow_and_criteria_count_per_person_failing_them(
    signed_in, monitor, population
):
    html = signed_in(monitor).get(LOG_URL).content.decode()
    assert counts_on(html) == {
        "screened": 3,
        "in_screening": 0,
        "not_eligible": 2,  # distinct people
        "fails-IN1": 0,
        "fails-IN2": 2,
        "fails-IN3": 0,
        "fails-IN4": 0,
        "fails-IN5": 1,
        "fails-EX1": 0,
        "eligible": 1,
        "awaiting_enrolment": 0,
        "declined": 0,
        "consented": 1,
        "enrolled": 1,
        "withdrawn": 0,
        "completed": 0,
    }
    assert "Does not meet IN2: Over 18 years of age" in html
    assert "Excluded by EX1: Pregnant women are excluded" in html


def test_a_participant_who_withdraws_after_enrolment_is_counted_as_withdrawn(
    signed_in, monitor, coordinator, population
):
    participant = population[2]
    services.consent_withdraw(
        actor=coordinator,
        screening=participant.screening,
        withdrawn_on=TODAY,
        scope=WithdrawalScope.NO_CONTACT,
    )
    counts = counts_on(signed_in(monitor).get(LOG_URL).content.decode())
    assert (counts["enrolled"], counts["withdrawn"], counts["consented"]) == (1, 1, 1)


def test_a_monitor_sees_screening_numbers_and_reasons_but_no_names(signed_in, monitor, population):
    too_young, both, participant = population
    html = signed_in(monitor).get(LOG_URL).content.decode()
    for name in NAMES:
        assert name not in html
    assert "1970-05-17" not in html and "2008-11-03" not in html  # dates of birth
    row = re.search(rf"{both.screening_number}</th>(.*?)</tr>", html, re.S).group(1)
    assert "Screen failure" in row
    assert "IN2: Over 18 years of age" in row and "IN5: Needs symptomatic relief" in row
    assert participant.study_id == "A1-001" and "A1-001" in html


def test_names_and_dates_of_birth_are_never_read_for_the_log(signed_in, monitor, population):
    client = signed_in(monitor)
    for params in ({}, {"format": "csv"}):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LOG_URL, params).status_code == 200
        sql = " ".join(query["sql"] for query in ctx.captured_queries)
        assert '"first_name"' not in sql and '"date_of_birth"' not in sql


def test_the_csv_has_the_same_log_with_headers_from_the_model_and_no_names(signed_in, monitor, population):
    too_young, both, participant = population
    response = signed_in(monitor).get(LOG_URL, {"format": "csv"})
    assert response["Content-Disposition"] == 'attachment; filename="screening-log-all-sites-2026-11-03.csv"'
    text = response.content.decode()
    for name in NAMES:
        assert name not in text
    header, *rows = csv_rows(response)
    assert header == ["Screening number", "Site", "Screening date", "Outcome", "Failing criteria", "Study id"]
    assert rows == [
        [too_young.screening_number, "A1", "2026-11-03", "Screen failure", "IN2: Over 18 years of age", ""],
        [
            both.screening_number,
            "A1",
            "2026-11-03",
            "Screen failure",
            "IN2: Over 18 years of age; IN5: Needs symptomatic relief",
            "",
        ],
        [participant.screening.screening_number, "A1", "2026-11-03", "Enrolled", "", "A1-001"],
    ]


def test_the_log_shows_only_the_users_sites_and_narrows_to_the_current_site(
    make_user, signed_in, monitor, population, site_a, site_b
):
    other_coordinator = make_user(role=Role.COORDINATOR, sites=[site_b])
    elsewhere = services.screening_create(
        actor=other_coordinator,
        site=site_b,
        first_name="Elsewhere",
        last_name="Person",
        date_of_birth=dt.date(1960, 1, 1),
        sex="male",
        screening_date=TODAY,
    )
    client = signed_in(monitor)
    html = client.get(LOG_URL).content.decode()
    assert elsewhere.screening_number not in html and counts_on(html)["screened"] == 3

    data_manager = make_user(role=Role.DATA_MANAGER, sites=[site_a])  # sees every site
    client = signed_in(data_manager)
    assert counts_on(client.get(LOG_URL).content.decode())["screened"] == 4
    client.post(reverse("site-select"), {"site": site_b.pk})
    html = client.get(LOG_URL).content.decode()
    assert counts_on(html)["screened"] == 1 and elsewhere.screening_number in html
    assert "Site B1" in html
    rows = csv_rows(client.get(LOG_URL, {"format": "csv"}))
    assert [row[0] for row in rows[1:]] == [elsewhere.screening_number]


def test_the_screening_period_filter_applies_to_counts_log_and_csv(signed_in, monitor, screen, population):
    earlier = screen(first_name="Early", screening_date=dt.date(2026, 10, 1))
    client = signed_in(monitor)
    html = client.get(LOG_URL, {"screened_to": "2026-10-31"}).content.decode()
    assert counts_on(html)["screened"] == 1 and earlier.screening_number in html
    rows = csv_rows(client.get(LOG_URL, {"screened_from": "2026-11-01", "format": "csv"}))
    assert len(rows) == 1 + 3 and earlier.screening_number not in {row[0] for row in rows}
    html = client.get(LOG_URL, {"outcome": "enrolled"}).content.decode()
    assert counts_on(html)["screened"] == 4  # the outcome filter narrows the table only
    assert "A1-001" in html and earlier.screening_number not in html


@pytest.mark.parametrize(
    "query",
    [
        "screened_from=yesterday",
        "screened_to=2026-13-45",
        "screened_from=2026-11-05&screened_to=2026-11-01",
        "outcome=bogus",
        "outcome=enrolled&outcome=%00",
        "screened_from=%00%ff",
        "format=pdf",
        "format=csv&screened_from=not-a-date",
        "format[]=csv&x=" + "9" * 5000,
    ],
)
def test_bad_query_strings_never_give_a_server_error(signed_in, monitor, population, query):
    response = signed_in(monitor).get(f"{LOG_URL}?{query}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


def test_invalid_filters_are_explained_instead_of_ignored(signed_in, monitor, population):
    html = signed_in(monitor).get(LOG_URL, {"screened_from": "yesterday", "format": "csv"}).content.decode()
    assert "Please correct the following:" in html and "Enter a valid date." in html
    assert 'data-testid="screening-counts"' not in html


def test_coordinators_investigators_and_data_managers_read_the_log_administrators_do_not(
    make_user, signed_in, site_a
):
    for role in (Role.COORDINATOR, Role.INVESTIGATOR, Role.DATA_MANAGER):
        assert signed_in(make_user(role=role, sites=[site_a])).get(LOG_URL).status_code == 200
    assert signed_in(make_user(role=Role.ADMINISTRATOR, sites=[site_a])).get(LOG_URL).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(LOG_URL, {"format": "csv"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_query_count_is_the_same_for_3_and_30_screenings(
    signed_in, monitor, screen, coordinator, investigator, consent_v1
):
    client = signed_in(monitor)
    client.get(LOG_URL)  # warm-up: session, permissions cache

    def screen_people(n: int) -> None:
        for i in range(n):
            screening = screen()
            if i % 3 == 0:
                fail(screening, coordinator, needs_symptomatic_relief=False)
            elif i % 3 == 1:
                enroll(screening, coordinator, investigator, consent_v1)

    def queries(**params) -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LOG_URL, params).status_code == 200
        return len(ctx.captured_queries)

    screen_people(3)
    few_page, few_csv = queries(), queries(format="csv")
    screen_people(27)
    assert counts_on(client.get(LOG_URL).content.decode())["screened"] == 30
    assert (queries(), queries(format="csv")) == (few_page, few_csv)
