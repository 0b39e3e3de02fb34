"""The investigator dashboard: numbers against a small hand-counted data set, access, and a query
count that does not grow with the number of participants."""

from __future__ import annotations

import base64
import datetime as dt
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lesions import services as lesion_services
from lesions.services import LesionRow
from participants import safety, services
from participants import visits as visit_services
from pro_measures import invitations
from tests.factories import ELIGIBLE_ANSWERS
from tests.lesions.conftest import measurement
from tests.participants.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    consent_v1,
    coordinator,
    frozen_today,
    investigator,
)
from tests.pro_measures.answers import complete_answers, invite
from trial.roles import Role

pytestmark = pytest.mark.django_db

# The dashboard is read on 20 November 2026; everyone was enrolled on 3 November (W0 window
# 3-10 November).
READ_ON = dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC)


def screen(actor, site, last_name):
    return services.screening_create(
        actor=actor,
        site=site,
        first_name="Pat",
        last_name=last_name,
        date_of_birth=dt.date(1970, 5, 17),
        sex="female",
        screening_date=TODAY,
    )


def make_eligible(actor, screening):
    services.eligibility_record(actor=actor, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
    screening.refresh_from_db()
    return screening


def enrol(coordinator, investigator, document, site, last_name):  # noqa: F811
    screening = make_eligible(coordinator, screen(coordinator, site, last_name))
    services.eligibility_confirm(actor=investigator, screening=screening)
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=document,
        consented_at=timezone.now(),
        participant_signature=f"Pat {last_name}",
        attestation=True,
        copy_given=True,
    )
    return services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)


def target_lesion(coordinator, participant):  # noqa: F811
    return lesion_services.lesion_add(
        actor=coordinator,
        participant=participant,
        first_seen_on=dt.date(2026, 9, 1),
        label="L1",
        anatomical_site="elbow",
        laterality="left",
        is_target=True,
    )


def measure(coordinator, participant, lesion, code, length):  # noqa: F811
    lesion_services.visit_lesions_save(
        actor=coordinator,
        visit=participant.visits.get(code=code),
        rows=[LesionRow(lesion, measurement=measurement(length, "10.0", "6.0"))],
    )


def adverse_event(coordinator, participant, **values):  # noqa: F811
    answers = {
        "term_code": "injection_site_pain",
        "ctcae_version": "5.0",
        "grade": 1,
        "related_to_sts": "not_related",
        "related_to_procedure": "probable",
        "onset_date": "2026-11-02",
        "outcome": "recovering",
        "action_taken": "none",
    }
    answers.update(values)
    return safety.adverse_event_record(actor=coordinator, participant=participant, values=answers)


@pytest.fixture
def site_b_coordinator(make_user, site_b):
    return make_user(role=Role.COORDINATOR, sites=[site_b])


@pytest.fixture
def study(coordinator, investigator, consent_v1, site_a, site_b, site_b_coordinator, make_user):  # noqa: F811
    """Site A, hand-counted:
    screened 7 (S1 not assessed, S2 eligible only, P1-P5 enrolled); P3 withdrawn.
    W0: P1 done 5 Nov (in window), P2 done 12 Nov (late), P3 missed, P4 done 4 Nov (in window,
    no measurements entered), P5 not done (overdue on 20 Nov by 10 days).
    Target lesion sum of longest diameters: P1 20 -> 15 mm at W4 (-25 %), P2 10 -> 12 mm (+20 %).
    Adverse events: P1 grade 1 not related; P1 grade 2 possible; P2 grade 3 serious, probable.
    Site B: one participant with a grade 4 serious event and a W0 overdue (not A's business)."""
    screen(coordinator, site_a, "One")
    make_eligible(coordinator, screen(coordinator, site_a, "Two"))
    p1, p2, p3, p4, p5 = (
        enrol(coordinator, investigator, consent_v1, site_a, name) for name in ("P1", "P2", "P3", "P4", "P5")
    )
    investigator_b = make_user(role=Role.INVESTIGATOR, sites=[site_b])
    pb = enrol(site_b_coordinator, investigator_b, consent_v1, site_b, "PB")

    l1, l2 = target_lesion(coordinator, p1), target_lesion(coordinator, p2)
    measure(coordinator, p1, l1, "W0", "20.0")
    measure(coordinator, p1, l1, "W4", "15.0")
    measure(coordinator, p2, l2, "W0", "10.0")
    measure(coordinator, p2, l2, "W4", "12.0")
    lb = target_lesion(site_b_coordinator, pb)
    measure(site_b_coordinator, pb, lb, "W0", "10.0")
    measure(site_b_coordinator, pb, lb, "W4", "1.0")

    adverse_event(coordinator, p1)
    adverse_event(coordinator, p1, grade=2, related_to_sts="possible")
    adverse_event(
        coordinator,
        p2,
        grade=3,
        serious=True,
        seriousness_criteria=["hospitalisation"],
        related_to_sts="probable",
    )
    adverse_event(
        site_b_coordinator,
        pb,
        grade=4,
        serious=True,
        seriousness_criteria=["life_threatening"],
        related_to_sts="definite",
    )

    with time_machine.travel(READ_ON, tick=False):
        visit_services.visit_complete(
            actor=coordinator, visit=p1.visits.get(code="W0"), visit_date=dt.date(2026, 11, 5)
        )
        visit_services.visit_complete(
            actor=coordinator, visit=p2.visits.get(code="W0"), visit_date=dt.date(2026, 11, 12)
        )
        visit_services.visit_miss(actor=coordinator, visit=p3.visits.get(code="W0"), reason="Flu")
        services.participant_end(
            actor=investigator,
            participant=p3,
            ended_on=dt.date(2026, 11, 15),
            end_reason="withdrew_consent",
        )
        visit_services.visit_complete(
            actor=coordinator, visit=p4.visits.get(code="W0"), visit_date=dt.date(2026, 11, 4)
        )
    return {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5, "pb": pb}


def chart_svgs(html: str) -> list[str]:
    """The SVG of each chart image (data: URIs: the Content-Security-Policy allows no inline SVG styles)."""
    return [
        base64.b64decode(data).decode()
        for data in re.findall(r'<img class="chart-image" src="data:image/svg\+xml;base64,([^"]+)"', html)
    ]


def page_of(client, user) -> str:
    from tests.conftest import sign_in

    with time_machine.travel(READ_ON, tick=False):
        sign_in(client, user)
        response = client.get(reverse("dashboard"))
    assert response.status_code == 200
    return re.sub(r"\s+", " ", response.content.decode())


def cells(page: str, table_id: str, row_attr: str) -> list[str]:
    table = page.split(f'id="{table_id}"')[1].split("</table>")[0]
    row = table.split(f"{row_attr}>")[1].split("</tr>")[0]
    return re.findall(r'<td class="text-end">([^<]*)</td>', row)


def test_funnel_counts_each_stage_at_the_site_against_the_target(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    # screened, eligible, consented, enrolled, completed, withdrawn
    assert cells(page, "funnel", 'data-site="all"') == ["7", "6", "5", "5", "0", "1"]
    assert "5 enrolled of a target of 30" in page


def test_visit_compliance_and_the_overdue_list(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    # in window, late, missed, overdue, % in window
    assert cells(page, "compliance", 'data-site="all"') == ["2", "1", "1", "1", "40.0"]
    overdue = page.split('id="overdue"')[1].split("</table>")[0]
    p5 = study["p5"].study_id
    assert f'data-visit="{p5}-W0"' in overdue
    assert '<td class="text-end">10</td>' in overdue  # window closed 10 November
    # The withdrawn participant's remaining visits are not owed.
    assert study["p3"].study_id not in overdue


def test_primary_outcome_per_participant_and_pooled(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    p1, p2 = study["p1"].study_id, study["p2"].study_id
    # last visit's diameter %, volume %, best diameter %
    assert cells(page, "outcome-participants", f'data-participant="{p1}"') == ["-25.0", "-25.0", "-25.0"]
    assert cells(page, "outcome-participants", f'data-participant="{p2}"') == ["20.0", "20.0", "20.0"]
    # W4: n = 2, median of -25 and +20
    assert cells(page, "outcome-pooled", 'data-visit="W4"') == ["2", "-2.5", "-2.5"]
    [waterfall] = chart_svgs(page.split('id="waterfall-chart"')[1].split("</figure>")[0])
    assert "<svg" in waterfall and p1 in waterfall and p2 in waterfall
    assert "Best change from baseline" in waterfall
    [spaghetti] = chart_svgs(page.split('id="spaghetti-chart"')[1].split("</figure>")[0])
    assert "<svg" in spaghetti and p1 in spaghetti and p2 in spaghetti


def test_pain_score_median_and_change_from_each_participants_baseline(
    client,
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    site_b_coordinator,
    study,
):
    # Pain NRS: P1 8 -> 4, P2 6 -> 6; site B's participant 10 (not counted at site A).
    for key, actor, w0, w4 in (
        ("p1", coordinator, 8, 4),
        ("p2", coordinator, 6, 6),
        ("pb", site_b_coordinator, 10, None),
    ):
        participant = study[key]
        for code, value in (("W0", w0), ("W4", w4)):
            if value is None:
                continue
            invitations.response_enter_paper(
                actor=actor,
                invitation=invite(participant.visits.get(code=code), "pain_nrs"),
                answers=complete_answers("pain_nrs", scale=value),
                completed_on=TODAY,
            )
    page = page_of(client, investigator)
    # n, median score, median change from baseline
    assert cells(page, "score-pain_nrs", 'data-visit="W0"') == ["2", "7.0", "0.0"]
    assert cells(page, "score-pain_nrs", 'data-visit="W4"') == ["2", "5.0", "-2.0"]
    assert "No scores yet." in page.split('id="score-haq_di"')[1].split("</table>")[0]


def test_adverse_events_by_grade_seriousness_and_relatedness(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    grades = [cells(page, "adverse-events", f'data-row="grade-{g}"')[0] for g in range(1, 6)]
    assert grades == ["1", "1", "1", "0", "0"]
    assert cells(page, "adverse-events", 'data-row="serious"') == ["1"]
    assert cells(page, "adverse-events", 'data-row="related"') == ["2"]
    assert "3 adverse events in 2 participants" in page


def test_completeness_counts_expected_and_entered_forms_at_completed_visits(
    client,
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    study,
):
    p1_baseline = study["p1"].visits.get(code="W0")
    safety.ae_review_record(actor=coordinator, visit=p1_baseline, new_events=False)
    invitations.response_enter_paper(
        actor=coordinator,
        invitation=invite(p1_baseline, "pain_nrs"),
        answers=complete_answers("pain_nrs", scale=3),
        completed_on=TODAY,
    )
    page = page_of(client, investigator)
    # W0 completed for P1, P2 and P4 (P4 without measurements); expected, entered, missing.
    assert cells(page, "completeness", 'data-form="measurements"') == ["3", "2", "1"]
    # Six questionnaires per baseline visit; P1 answered one.
    assert cells(page, "completeness", 'data-form="pros"') == ["18", "1", "17"]
    assert cells(page, "completeness", 'data-form="ae_review"') == ["3", "1", "2"]


def test_other_sites_data_is_excluded(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    assert study["pb"].study_id not in page
    assert 'data-site="B1"' not in page
    assert '<td class="text-end">4</td>' not in page.split('id="adverse-events"')[1].split("</table>")[0]


def test_a_data_manager_sees_every_site_with_a_row_each(client, make_user, study):
    page = page_of(client, make_user(role=Role.DATA_MANAGER))
    assert cells(page, "funnel", 'data-site="A1"') == ["7", "6", "5", "5", "0", "1"]
    assert cells(page, "funnel", 'data-site="B1"') == ["1", "1", "1", "1", "0", "0"]
    assert cells(page, "funnel", 'data-site="all"') == ["8", "7", "6", "6", "0", "1"]
    assert study["pb"].study_id in page.split('id="overdue"')[1].split("</table>")[0]


def test_choosing_a_site_narrows_every_section_to_it(client, make_user, site_a, study):
    from tests.conftest import sign_in

    data_manager = make_user(role=Role.DATA_MANAGER)
    with time_machine.travel(READ_ON, tick=False):
        sign_in(client, data_manager)
        client.post(reverse("site-select"), {"site": site_a.pk})
        page = re.sub(r"\s+", " ", client.get(reverse("dashboard")).content.decode())
    assert "Site A" in page.split("</h1>")[0]
    assert "5 enrolled at this site; the study's target is 30 over all sites." in page.replace("&#x27;", "'")
    assert cells(page, "funnel", 'data-site="all"') == ["7", "6", "5", "5", "0", "1"]
    assert 'data-site="B1"' not in page
    assert study["pb"].study_id not in page


def test_a_coordinator_sees_the_dashboard_of_their_site(client, coordinator, study):  # noqa: F811
    page = page_of(client, coordinator)
    assert cells(page, "funnel", 'data-site="all"')[0] == "7"


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith("/account/login/")


def test_a_user_without_a_role_is_refused(client, make_user, site_a):
    from tests.conftest import sign_in

    sign_in(client, make_user(sites=[site_a]))
    assert client.get(reverse("dashboard")).status_code == 403


def test_each_chart_has_a_title_and_a_table_with_caption_and_scope_headers(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    charts = chart_svgs(page)
    assert len(charts) == 5  # waterfall, spaghetti, three scores
    for svg in charts:
        assert re.search(r"<title>[^<]+</title>", svg)
    assert len(re.findall(r'<img class="chart-image" src="[^"]+" alt="[^"]+">', page)) == 5
    for table_id in (
        "funnel",
        "compliance",
        "outcome-participants",
        "outcome-pooled",
        "score-pain_nrs",
        "adverse-events",
        "completeness",
    ):
        table = page.split(f'id="{table_id}"')[1].split("</table>")[0]
        assert "<caption>" in table
        assert 'scope="row"' in table or 'scope="col"' in table


def count_queries(client, user) -> int:
    from tests.conftest import sign_in

    with time_machine.travel(READ_ON, tick=False):
        sign_in(client, user)
        client.get(reverse("dashboard"))  # the first request of a session also records its activity
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("dashboard")).status_code == 200
    return len(queries)


def test_query_count_does_not_grow_with_participants(
    client,
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    consent_v1,  # noqa: F811
    site_a,
):
    def add_participants(n):
        for i in range(n):
            participant = enrol(coordinator, investigator, consent_v1, site_a, f"Q{i}")
            lesion = target_lesion(coordinator, participant)
            measure(coordinator, participant, lesion, "W0", "10.0")
            measure(coordinator, participant, lesion, "W4", "8.0")
            adverse_event(coordinator, participant)

    add_participants(2)
    small = count_queries(client, investigator)
    add_participants(10)
    large = count_queries(client, investigator)
    assert small == large
    # The page did show the twelve participants' outcome (so the count covered real work).
    with time_machine.travel(READ_ON, tick=False):
        page = client.get(reverse("dashboard")).content.decode()
    assert page.count("<tr data-participant=") == 12


def test_open_queries_by_age(client, investigator, coordinator, study, make_user, site_a):  # noqa: F811
    from trial.data_management import services as dm

    monitor = make_user(role=Role.MONITOR, sites=[site_a])
    p1_w0 = study["p1"].visits.get(code="W0")
    first = dm.query_raise(
        actor=monitor, record=p1_w0, field_name="visit_date", text="Please confirm the date."
    )
    dm.query_raise(
        actor=monitor, record=study["p2"].visits.get(code="W0"), field_name="", text="Late visit: why?"
    )
    dm.query_answer(actor=coordinator, query=first, answer="Confirmed from the clinic notes.")
    page = page_of(client, investigator)
    age = (READ_ON.date() - dt.date(2026, 11, 3)).days
    band = next(
        label
        for label, low, high in [
            ("0-7 days", 0, 7),
            ("8-14 days", 8, 14),
            ("15-30 days", 15, 30),
            ("over 30 days", 31, 10**6),
        ]
        if low <= age <= high
    )
    table = page.split('id="query-ages"')[1].split("</table>")[0]
    row = table.split(f'<th scope="row">{band}</th>')[1].split("</tr>")[0]
    assert re.findall(r'<td class="text-end">([^<]*)</td>', row) == ["1", "1"]
