"""The visit and safety pages as a coordinator, an investigator and a monitor use them: the today
list, the timeline, the visit page and its forms, adverse events and deviations."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lesions import services as lesion_services
from lesions.services import LesionRow, visit_lesions_save
from participants import safety, services, visit_views, visits
from participants.models import (
    AdverseEvent,
    AEReview,
    Participant,
    PregnancyTest,
    ProtocolDeviation,
    Visit,
    VisitStatus,
)
from participants.visit_forms import adverse_event_problems
from participants.visit_views import lesion_table_url
from tests.factories import ELIGIBLE_ANSWERS
from tests.lesions.conftest import measurement
from tests.participants.conftest import TODAY
from trial.concurrency import CONFLICT_MESSAGE
from trial.models import Site
from trial.roles import Role
from trial.sites import SESSION_KEY

pytestmark = pytest.mark.django_db


def enrol(*, coordinator, investigator, document, site, day=TODAY, first_name="Pat", answers=None):
    """Screen, check, confirm, consent and enrol one person at `site` on `day`."""
    with time_machine.travel(dt.datetime.combine(day, dt.time(15), tzinfo=dt.UTC), tick=False):
        screening = services.screening_create(
            actor=coordinator,
            site=site,
            first_name=first_name,
            last_name="Doe",
            date_of_birth=dt.date(1970, 5, 17),
            sex="female",
            screening_date=day,
        )
        values = dict(ELIGIBLE_ANSWERS, pregnancy_test_date=day - dt.timedelta(days=1))
        values.update(answers or {})
        services.eligibility_record(actor=coordinator, screening=screening, answers=values)
        services.eligibility_confirm(actor=investigator, screening=screening)
        services.consent_record(
            actor=coordinator,
            screening=screening,
            document=document,
            consented_at=timezone.now(),
            participant_signature=f"{first_name} Doe",
            attestation=True,
            copy_given=True,
        )
        return services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=day)


@pytest.fixture
def participant(consented, coordinator):
    return services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


@pytest.fixture
def baseline(participant):
    return participant.visits.get(code="W0")


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a])


@pytest.fixture
def coordinator_b(make_user, site_b):
    return make_user(role=Role.COORDINATOR, sites=[site_b], email="coordinator-b@example.org")


@pytest.fixture
def lesions(participant, coordinator):
    specs = [
        {"label": "L1", "anatomical_site": "elbow", "laterality": "left"},
        {"label": "L2", "anatomical_site": "knee", "laterality": "right"},
        {"label": "L3", "anatomical_site": "trunk", "laterality": "midline"},
    ]
    return [
        lesion_services.lesion_add(
            actor=coordinator, participant=participant, first_seen_on=dt.date(2026, 9, 1), **spec
        )
        for spec in specs
    ]


def ae_data(**extra):
    data = {
        "reported_at_visit": "",
        "term_code": "injection_site_pain",
        "term_text": "",
        "description": "",
        "ctcae_version": "5.0",
        "grade": "2",
        "related_to_sts": "possible",
        "related_to_procedure": "probable",
        "onset_date": "2026-11-02",
        "resolution_date": "",
        "outcome": "recovering",
        "action_taken": "none",
    }
    data.update(extra)
    return {key: value for key, value in data.items() if value is not None}


def record_ae(participant, coordinator, **values):
    answers = {
        "term_code": "injection_site_pain",
        "ctcae_version": "5.0",
        "grade": 2,
        "related_to_sts": "possible",
        "related_to_procedure": "probable",
        "onset_date": "2026-11-02",
        "outcome": "recovering",
        "action_taken": "none",
    }
    answers.update(values)
    return safety.adverse_event_record(actor=coordinator, participant=participant, values=answers)


def text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- Today ------------------------------------------------------------------------------------


def test_today_lists_due_in_window_and_overdue_visits_with_days(
    participant, coordinator, investigator, consent_v1, site_a, signed_in
):
    late = enrol(
        coordinator=coordinator,
        investigator=investigator,
        document=consent_v1,
        site=site_a,
        day=dt.date(2026, 10, 20),
        first_name="Late",
    )
    recent = enrol(
        coordinator=coordinator,
        investigator=investigator,
        document=consent_v1,
        site=site_a,
        day=dt.date(2026, 10, 31),
        first_name="Recent",
    )
    page = text(signed_in(coordinator).get(reverse("participants:today")))
    due = page.split('data-section="due-today"')[1].split("</table>")[0]
    in_window = page.split('data-section="in-window"')[1].split("</table>")[0]
    overdue = page.split('data-section="overdue"')[1].split("</table>")[0]
    assert participant.study_id in due and "4 days left" not in due
    # Baseline of 31 Oct: window closes 7 Nov, four days after today (3 Nov).
    assert recent.study_id in in_window and "4 days left" in in_window
    # Baseline of 20 Oct: window closed 27 Oct, seven days ago.
    assert late.study_id in overdue and "7 days overdue" in overdue
    visit = late.visits.get(code="W0")
    assert f'href="{visit.get_absolute_url()}"' in overdue
    assert "2026-10-20 – 2026-10-27" in overdue and site_a.code in overdue


def today_row(*, closes: dt.date, overdue: bool, study_id="STS-A-0007", site_code="A", name="Week 4"):
    """The today list's row of an unsaved visit W4 (target 30 Oct, window from 27 Oct) on 3 Nov."""
    participant = Participant(pk=7, study_id=study_id, site=Site(pk=3, code=site_code))
    visit = Visit(
        pk=42,
        participant=participant,
        code="W4",
        name=name,
        target_date=dt.date(2026, 10, 30),
        window_opens=dt.date(2026, 10, 27),
        window_closes=closes,
    )
    return visit_views.TodayRow.of(visit, today=dt.date(2026, 11, 3), overdue=overdue, url="/visits/42/")


@pytest.mark.parametrize(
    ("closes", "overdue", "days", "shown"),
    [
        (dt.date(2026, 11, 4), False, 1, "1 day left"),
        (dt.date(2026, 11, 3), False, 0, "Window closes today"),
        (dt.date(2026, 11, 2), True, 1, "1 day overdue"),
        (dt.date(2026, 10, 30), True, 4, "4 days overdue"),
    ],
)
def test_today_row_works_out_each_cell_once(closes, overdue, days, shown):
    row = today_row(closes=closes, overdue=overdue)
    assert (row.days, row.days_text) == (days, shown)
    assert (row.study_id, row.code, row.label, row.site_code) == ("STS-A-0007", "W4", "W4: Week 4", "A")
    assert (row.target, row.window) == ("2026-10-30", f"2026-10-27 – {closes.isoformat()}")


def test_today_rows_are_written_escaped_cell_by_cell():
    row = today_row(
        closes=dt.date(2026, 11, 6),
        overdue=False,
        study_id="STS-<A>-0007",
        site_code="A&B",
        name='Week 4 "<b>late</b>"',
    )
    section = visit_views.TodaySection("in-window", "In window", [row, row], "", page=None)
    html = str(section.rows_html)
    assert html.count('<tr data-visit="STS-&lt;A&gt;-0007 W4">') == 2
    assert '<th scope="row">STS-&lt;A&gt;-0007</th>' in html
    assert '<td><a href="/visits/42/">W4: Week 4 &quot;&lt;b&gt;late&lt;/b&gt;&quot;</a></td>' in html
    assert "<td>2026-10-27 – 2026-11-06</td>" in html and "<td>3 days left</td>" in html
    assert "<td>A&amp;B</td>" in html and "<b>" not in html


def test_today_query_count_does_not_grow_with_participants(
    coordinator, investigator, consent_v1, site_a, signed_in, monkeypatch
):
    # Three visits a page: the larger list has several pages, the page the same rows.
    monkeypatch.setattr(visit_views, "TODAY_PAGE_SIZE", 3)
    client = signed_in(coordinator)

    def enrol_many(n, start):
        for i in range(start, start + n):
            enrol(
                coordinator=coordinator,
                investigator=investigator,
                document=consent_v1,
                site=site_a,
                first_name=f"P{i}",
            )

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(reverse("participants:today"))
        assert response.status_code == 200
        return (
            len(ctx.captured_queries),
            response.content.decode().count('data-visit="'),
            response.context["sections"][0].page.count,
        )

    enrol_many(3, 0)
    count()  # the first request after signing in does its own bookkeeping
    small = count()
    enrol_many(5, 3)
    large = count()
    assert (small[1:], large[1:]) == ((3, 3), (3, 8))
    assert small[0] == large[0]


def test_today_pages_each_section_and_shows_its_total(
    coordinator, investigator, consent_v1, site_a, signed_in, monkeypatch
):
    monkeypatch.setattr(visit_views, "TODAY_PAGE_SIZE", 2)
    # Baselines of 20 October: windows closed on 27 October, overdue on 3 November.
    late = [
        enrol(
            coordinator=coordinator,
            investigator=investigator,
            document=consent_v1,
            site=site_a,
            day=dt.date(2026, 10, 20),
            first_name=f"Late{i}",
        )
        for i in range(3)
    ]
    due = enrol(coordinator=coordinator, investigator=investigator, document=consent_v1, site=site_a)
    client = signed_in(coordinator)
    ordered = sorted(p.study_id for p in late)

    def overdue_ids(response):
        assert response.status_code == 200
        section = text(response).split('data-section="overdue"')[1].split("</table>")[0]
        return re.findall(r'data-visit="(\S+) W0"', section)

    first = client.get(reverse("participants:today"))
    assert overdue_ids(first) == ordered[:2]
    page = text(first)
    assert 'Overdue <span class="badge text-bg-danger">3</span>' in page
    assert "Overdue (3)" in page and "1–2 of 3" in page
    # The pagination control is a labelled nav; the current page says so; links keep the anchor.
    nav = page.split('aria-label="Pages of Overdue"')[1].split("</nav>")[0]
    assert 'aria-current="page"><span class="visually-hidden">Page </span>1</a>' in nav
    assert 'href="?overdue_page=2#overdue"' in nav
    # One section's page leaves the others alone, and links keep the other sections' pages.
    second = client.get(reverse("participants:today"), {"overdue_page": "2", "in_window_page": "1"})
    assert overdue_ids(second) == ordered[2:]
    assert due.study_id in text(second).split('data-section="due-today"')[1].split("</table>")[0]
    assert 'href="?in_window_page=1#overdue"' in text(second)


@pytest.mark.parametrize(
    ("value", "shown"), [("abc", 1), ("", 1), ("0", 1), ("-3", 1), ("99999", 2), ("2.5", 1), ("1e3", 1)]
)
def test_today_bad_page_numbers_give_the_first_or_last_page(
    value, shown, coordinator, investigator, consent_v1, site_a, signed_in, monkeypatch
):
    monkeypatch.setattr(visit_views, "TODAY_PAGE_SIZE", 2)
    for i in range(3):
        enrol(
            coordinator=coordinator,
            investigator=investigator,
            document=consent_v1,
            site=site_a,
            day=dt.date(2026, 10, 20),
            first_name=f"Late{i}",
        )
    response = signed_in(coordinator).get(reverse("participants:today"), {"overdue_page": value})
    assert response.status_code == 200
    assert response.context["sections"][2].page.number == shown


def test_today_shows_only_the_current_site_when_one_is_chosen(
    participant, coordinator, make_user, site_a, site_b, consent_v1, signed_in
):
    both = make_user(role=Role.COORDINATOR, sites=[site_a, site_b])
    investigator_b = make_user(role=Role.INVESTIGATOR, sites=[site_b])
    elsewhere = enrol(
        coordinator=both, investigator=investigator_b, document=consent_v1, site=site_b, first_name="Bea"
    )
    client = signed_in(both)
    page = client.get(reverse("participants:today")).content.decode()
    assert participant.study_id in page and elsewhere.study_id in page
    session = client.session
    session[SESSION_KEY] = site_b.pk
    session.save()
    page = client.get(reverse("participants:today")).content.decode()
    assert elsewhere.study_id in page and participant.study_id not in page


# --- Access by role and site ------------------------------------------------------------------


def test_monitor_reads_the_visit_pages_but_every_write_is_forbidden(
    participant, baseline, monitor, signed_in
):
    client = signed_in(monitor)
    page = client.get(baseline.get_absolute_url())
    assert page.status_code == 200 and "Complete visit" not in page.content.decode()
    assert client.get(reverse("participant-timeline", args=[participant.pk])).status_code == 200
    assert client.get(reverse("participants:today")).status_code == 200
    assert client.get(reverse("participants:deviation-list")).status_code == 200
    posts = [
        (reverse("participants:visit-complete", args=[baseline.pk]), {"visit_date": "2026-11-03"}),
        (reverse("participants:visit-miss", args=[baseline.pk]), {"reason": "ill"}),
        (reverse("participants:visit-add-unscheduled", args=[participant.pk]), {"visit_date": "2026-11-03"}),
        (reverse("participants:visit-pregnancy-test", args=[baseline.pk]), {"result": "negative"}),
        (reverse("participants:visit-ae-review", args=[baseline.pk]), {"new_events": "no"}),
        (reverse("participants:adverse-event-create", args=[participant.pk]), ae_data()),
        (reverse("participants:deviation-create"), {"category": "other"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    baseline.refresh_from_db()
    assert baseline.status == VisitStatus.PLANNED
    assert not AdverseEvent.objects.exists() and not AEReview.objects.exists()


def test_investigator_completes_a_visit(baseline, investigator, signed_in):
    response = signed_in(investigator).post(
        reverse("participants:visit-complete", args=[baseline.pk]), {"visit_date": "2026-11-03"}
    )
    assert response.status_code == 302 and response["Location"] == baseline.get_absolute_url()
    baseline.refresh_from_db()
    assert baseline.status == VisitStatus.COMPLETED and baseline.visit_date == TODAY


def test_another_sites_records_are_not_found(participant, baseline, coordinator, coordinator_b, signed_in):
    event = record_ae(participant, coordinator)
    client = signed_in(coordinator_b)
    urls = [
        baseline.get_absolute_url(),
        reverse("participants:visit-complete", args=[baseline.pk]),
        reverse("participants:visit-pregnancy-test", args=[baseline.pk]),
        reverse("participants:visit-ae-review", args=[baseline.pk]),
        reverse("participant-timeline", args=[participant.pk]),
        reverse("participants:visit-add-unscheduled", args=[participant.pk]),
        reverse("participants:adverse-event-list", args=[participant.pk]),
        reverse("participants:adverse-event-create", args=[participant.pk]),
        reverse("participants:adverse-event-detail", args=[event.pk]),
        reverse("participants:adverse-event-edit", args=[event.pk]),
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    response = client.post(
        reverse("participants:visit-complete", args=[baseline.pk]), {"visit_date": "2026-11-03"}
    )
    assert response.status_code == 404
    assert participant.study_id not in client.get(reverse("participants:today")).content.decode()


# --- The visit page ---------------------------------------------------------------------------


def test_visit_page_leads_through_the_forms_in_order(baseline, coordinator, signed_in):
    page = text(signed_in(coordinator).get(baseline.get_absolute_url()))
    steps = page.split('id="visit-steps"')[1].split("</ol>")[0]
    order = [
        steps.index(word)
        for word in ("Pregnancy test", "STS injections", "Questionnaires", "Adverse event review")
    ]
    assert order == sorted(order)
    assert reverse("participants:visit-pregnancy-test", args=[baseline.pk]) in steps
    assert lesion_table_url(baseline) in steps
    assert reverse("participants:visit-ae-review", args=[baseline.pk]) in steps
    # Questionnaires: none invited yet (planning runs on commit), so none of the six is done.
    assert 'data-form="pros" data-progress="missing"' in steps and "0 of 6 done" in steps
    assert "Not yet available" not in steps
    assert "DEMO VALUES" in page and "2.0 mL per lesion" in page
    # Complete with today's date (at the site) offered; or record as missed.
    assert 'name="visit_date" value="2026-11-03"' in page
    assert reverse("participants:visit-miss", args=[baseline.pk]) in page


def test_follow_up_visit_page_expects_no_injections(participant, coordinator, signed_in):
    w16 = participant.visits.get(code="W16")
    page = text(signed_in(coordinator).get(w16.get_absolute_url()))
    assert "Ultrasound measurements" in page and "STS injections" not in page
    assert "DEMO VALUES" not in page


def test_completing_a_visit_refuses_text_and_future_dates(baseline, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:visit-complete", args=[baseline.pk])
    response = client.post(url, {"visit_date": "next tuesday"})
    assert response.status_code == 200 and "Enter a valid date" in response.content.decode()
    response = client.post(url, {"visit_date": "2026-11-04"})
    assert response.status_code == 200 and "cannot be in the future" in response.content.decode()
    baseline.refresh_from_db()
    assert baseline.status == VisitStatus.PLANNED


def test_a_missed_visit_needs_a_reason(baseline, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:visit-miss", args=[baseline.pk])
    response = client.post(url, {"reason": "   "})
    assert response.status_code == 200 and 'role="alert"' in response.content.decode()
    baseline.refresh_from_db()
    assert baseline.status == VisitStatus.PLANNED
    response = client.post(url, {"reason": "admitted to hospital"})
    assert response.status_code == 302
    baseline.refresh_from_db()
    assert (baseline.status, baseline.missed_reason) == (VisitStatus.MISSED, "admitted to hospital")
    # A missed visit offers neither completing nor the forms.
    page = client.get(baseline.get_absolute_url()).content.decode()
    assert "Complete visit" not in page and "Not done: visit missed" in page


def test_unscheduled_visit_is_added_from_the_timeline(participant, coordinator, signed_in):
    client = signed_in(coordinator)
    add_url = reverse("participants:visit-add-unscheduled", args=[participant.pk])
    assert add_url in client.get(reverse("participant-timeline", args=[participant.pk])).content.decode()
    response = client.post(add_url, {"visit_date": "2026-11-03", "reason": ""})
    assert response.status_code == 200 and not participant.visits.filter(code="UNS-1").exists()
    response = client.post(add_url, {"visit_date": "2026-11-03", "reason": "new painful lesion"})
    visit = participant.visits.get(code="UNS-1")
    assert response["Location"] == visit.get_absolute_url()
    assert visit.unscheduled_reason == "new painful lesion"


def test_unknown_visit_is_not_found(coordinator, signed_in, participant):
    client = signed_in(coordinator)
    assert client.get(reverse("participants:visit-detail", args=[999999])).status_code == 404
    assert client.post(reverse("participants:visit-complete", args=[999999]), {}).status_code == 404


# --- Timeline ---------------------------------------------------------------------------------


def test_timeline_shows_visit_states_and_which_forms_are_done_or_missing(
    participant, baseline, lesions, coordinator, signed_in
):
    safety.pregnancy_test_record(
        actor=coordinator,
        participant=participant,
        visit=baseline,
        test_type="urine_hcg",
        test_date=TODAY,
        result="negative",
    )
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement()) for lesion in lesions],
    )
    safety.ae_review_record(actor=coordinator, visit=baseline, new_events=False)
    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=TODAY)
    page = text(signed_in(coordinator).get(reverse("participant-timeline", args=[participant.pk])))
    w0 = page.split('<tr data-visit="W0">')[1].split("</tr>")[0]
    assert "Completed" in w0 and "2026-11-03" in w0
    assert 'data-form="pregnancy_test" data-progress="done"' in w0
    assert 'data-form="measurements" data-progress="done"' in w0 and "3 lesions" in w0
    assert 'data-form="injections" data-progress="missing"' in w0 and "Missing" in w0
    # No invitation was created for W0 (planning runs on commit): its questionnaires are missing.
    assert 'data-form="pros" data-progress="missing"' in w0 and "0 of 6 done" in w0
    assert 'data-form="ae_review" data-progress="done"' in w0 and "no new events" in w0
    w4 = page.split('<tr data-visit="W4">')[1].split("</tr>")[0]
    assert "Planned" in w4 and "Not yet due" in w4 and "2026-11-24 – 2026-12-08" in w4


def test_overdue_visit_forms_are_missing(participant, coordinator, signed_in):
    with time_machine.travel(dt.datetime(2026, 11, 12, 15, tzinfo=dt.UTC), tick=False):
        page = text(signed_in(coordinator).get(reverse("participant-timeline", args=[participant.pk])))
    w0 = page.split('<tr data-visit="W0">')[1].split("</tr>")[0]
    assert "Overdue (window closed)" in w0
    assert 'data-form="measurements" data-progress="missing"' in w0


def test_timeline_expects_no_pregnancy_test_when_not_of_childbearing_potential(
    coordinator, investigator, consent_v1, site_a, signed_in
):
    person = enrol(
        coordinator=coordinator,
        investigator=investigator,
        document=consent_v1,
        site=site_a,
        answers={
            "childbearing_potential": False,
            "non_childbearing_reason": "post_menopausal",
            "pregnancy_test_type": "",
            "pregnancy_test_date": None,
            "pregnancy_test_result": "",
        },
    )
    client = signed_in(coordinator)
    page = client.get(reverse("participant-timeline", args=[person.pk])).content.decode()
    assert 'data-form="pregnancy_test"' not in page and 'data-form="injections"' in page
    visit_page = client.get(person.visits.get(code="W0").get_absolute_url()).content.decode()
    assert "pregnancy-test" not in visit_page


def test_timeline_shows_change_from_baseline(participant, baseline, lesions, coordinator, signed_in):
    w4 = participant.visits.get(code="W4")
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement()) for lesion in lesions],
    )
    visit_lesions_save(
        actor=coordinator,
        visit=w4,
        rows=[LesionRow(lesion, measurement=measurement("8.0", "8.0", "5.0")) for lesion in lesions],
    )
    page = text(signed_in(coordinator).get(reverse("participant-timeline", args=[participant.pk])))
    lesion_table = page.split('id="lesion-change"')[1].split("</table>")[0]
    l1_w4 = lesion_table.split('data-lesion="L1" data-visit="W4">')[1].split("</tr>")[0]
    # Longest diameter 10.0 -> 8.0 mm; volume (pi/6 x L x W x D, 0.1 mm3) 209.4 -> 167.6 mm3.
    assert "<td>8.0</td><td>-2.0</td><td>-20.0 %</td>" in l1_w4
    assert "<td>167.6</td><td>-41.8</td><td>-20.0 %</td>" in l1_w4
    l1_w0 = lesion_table.split('data-lesion="L1" data-visit="W0">')[1].split("</tr>")[0]
    assert "<td>10.0</td><td>baseline</td><td>baseline</td>" in l1_w0
    totals = page.split('id="participant-change"')[1].split("</table>")[0]
    # No target flagged: all three lesions count, 30.0 -> 24.0 mm.
    assert "<td>24.0</td><td>-6.0</td><td>-20.0 %</td>" in totals


def test_timeline_query_count_does_not_grow_with_visits(
    participant, baseline, lesions, coordinator, signed_in
):
    client = signed_in(coordinator)
    url = reverse("participant-timeline", args=[participant.pk])

    def fill(visit):
        safety.pregnancy_test_record(
            actor=coordinator,
            participant=participant,
            visit=visit,
            test_type="urine_hcg",
            test_date=TODAY,
            result="negative",
        )
        visit_lesions_save(
            actor=coordinator,
            visit=visit,
            rows=[LesionRow(lesion, measurement=measurement()) for lesion in lesions],
        )
        safety.ae_review_record(actor=coordinator, visit=visit, new_events=False)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url)
        return len(ctx.captured_queries), response.content.decode().count('data-progress="done"')

    fill(baseline)
    count()  # the first request after signing in does its own bookkeeping
    small = count()
    for _ in range(9):
        fill(
            visits.visit_add_unscheduled(
                actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
            )
        )
    large = count()
    assert (small[1], large[1]) == (3, 30)
    assert small[0] == large[0]


# --- Pregnancy test and AE review -------------------------------------------------------------


def test_pregnancy_test_is_recorded_at_the_visit(participant, baseline, coordinator, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:visit-pregnancy-test", args=[baseline.pk])
    response = client.post(url, {"test_type": "urine_hcg", "test_date": "03/11/2026x", "result": "maybe"})
    body = response.content.decode()
    assert response.status_code == 200 and "Enter a valid date" in body and "Select a valid choice" in body
    response = client.post(url, {"test_type": "urine_hcg", "test_date": "2026-11-03", "result": "negative"})
    assert response["Location"] == baseline.get_absolute_url()
    test = PregnancyTest.objects.get()
    assert (test.visit, test.participant, test.result) == (baseline, participant, "negative")
    page = client.get(baseline.get_absolute_url()).content.decode()
    assert 'data-form="pregnancy_test" data-progress="done"' in page


def test_ae_review_yes_leads_to_the_ae_form_with_the_visit_chosen(
    participant, baseline, coordinator, signed_in
):
    client = signed_in(coordinator)
    response = client.post(reverse("participants:visit-ae-review", args=[baseline.pk]), {"new_events": "yes"})
    create_url = reverse("participants:adverse-event-create", args=[participant.pk])
    assert response["Location"] == f"{create_url}?visit={baseline.pk}"
    page = client.get(response["Location"]).content.decode()
    assert re.search(rf'<option value="{baseline.pk}" selected>W0', page)
    assert AEReview.objects.get(visit=baseline).new_events is True


def test_ae_review_no_returns_to_the_visit(baseline, coordinator, signed_in):
    client = signed_in(coordinator)
    response = client.post(reverse("participants:visit-ae-review", args=[baseline.pk]), {"new_events": "no"})
    assert response["Location"] == baseline.get_absolute_url()
    response = client.post(reverse("participants:visit-ae-review", args=[baseline.pk]), {})
    assert response.status_code == 200 and "This field is required" in response.content.decode()


# --- Adverse events ---------------------------------------------------------------------------


def test_term_picker_lists_expected_local_events_first(participant, coordinator, signed_in):
    page = signed_in(coordinator).get(reverse("participants:adverse-event-create", args=[participant.pk]))
    body = page.content.decode()
    assert body.index("Injection site pain or burning") < body.index("Other (describe)")
    assert '<optgroup label="Expected local events after STS injection">' in body
    assert "<legend" in body and "Seriousness criteria" in body  # checkbox group in a fieldset


def test_serious_event_reported_on_the_page_emails_investigators_after_commit(
    participant,
    baseline,
    coordinator,
    investigator,
    signed_in,
    django_capture_on_commit_callbacks,
    celery_eager,
):
    client = signed_in(coordinator)
    data = ae_data(
        reported_at_visit=str(baseline.pk),
        term_code="injection_site_infection",
        grade="3",
        serious="on",
        seriousness_criteria=["hospitalisation"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("participants:adverse-event-create", args=[participant.pk]), data)
    assert response.status_code == 302 and response["Location"] == baseline.get_absolute_url()
    event = AdverseEvent.objects.get()
    assert event.serious and event.seriousness_criteria == ["hospitalisation"]
    assert event.reported_by == coordinator and event.reported_at_visit == baseline
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [investigator.email]
    assert participant.study_id in mail.outbox[0].subject
    event.refresh_from_db()
    assert event.investigators_notified_at is not None


def test_serious_without_criteria_says_what_is_missing(participant, coordinator, signed_in, celery_eager):
    response = signed_in(coordinator).post(
        reverse("participants:adverse-event-create", args=[participant.pk]), ae_data(serious="on")
    )
    assert response.status_code == 200
    assert "A serious event needs at least one seriousness criterion" in response.content.decode()
    assert not AdverseEvent.objects.exists() and mail.outbox == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"grade": "9"}, "Select a valid choice"),
        ({"grade": "two"}, "Select a valid choice"),
        ({"onset_date": "yesterday"}, "Enter a date as YYYY, YYYY-MM or YYYY-MM-DD"),
        ({"onset_date": "2026-12-01"}, "The onset date cannot be in the future"),
        ({"resolution_date": "2026-10"}, "The event cannot resolve before its onset"),
        ({"reported_at_visit": "999999"}, "Select a valid choice"),
        ({"term_code": "other"}, "Describe the event when you choose"),
        ({"term_code": "sneezing"}, "Select a valid choice"),
        ({"seriousness_criteria": ["death"]}, "tick &#x27;Serious&#x27; or clear the criteria"),
        (
            {"grade": "5", "serious": "on", "seriousness_criteria": ["death"]},
            "the outcome must be &#x27;Fatal&#x27;",
        ),
    ],
)
def test_bad_adverse_event_input_gets_a_field_error(participant, coordinator, signed_in, change, message):
    response = signed_in(coordinator).post(
        reverse("participants:adverse-event-create", args=[participant.pk]), ae_data(**change)
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AdverseEvent.objects.exists()


def test_visit_of_another_participant_or_nonsense_in_the_link_is_not_found(
    participant, coordinator, investigator, consent_v1, site_a, signed_in
):
    other = enrol(coordinator=coordinator, investigator=investigator, document=consent_v1, site=site_a)
    client = signed_in(coordinator)
    url = reverse("participants:adverse-event-create", args=[participant.pk])
    assert client.get(f"{url}?visit={other.visits.first().pk}").status_code == 404
    assert client.get(f"{url}?visit=abc").status_code == 404
    assert client.get(f"{url}?visit=999999").status_code == 404
    response = client.post(url, ae_data(reported_at_visit=str(other.visits.first().pk)))
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


def test_adverse_event_change_needs_a_reason(participant, coordinator, signed_in):
    event = record_ae(participant, coordinator)
    response = signed_in(coordinator).post(
        reverse("participants:adverse-event-edit", args=[event.pk]),
        ae_data(
            outcome="recovered", resolution_date="2026-11-03", reason="  ", row_version=str(event.row_version)
        ),
    )
    assert response.status_code == 200 and "Reason for change" in response.content.decode()
    event.refresh_from_db()
    assert event.outcome == "recovering" and event.row_version == 1


def test_adverse_event_follow_up_is_saved_with_its_reason(participant, coordinator, signed_in):
    event = record_ae(participant, coordinator)
    client = signed_in(coordinator)
    url = reverse("participants:adverse-event-edit", args=[event.pk])
    form = client.get(url).content.decode()
    assert 'name="row_version" value="1"' in form and 'value="injection_site_pain" selected' in form
    response = client.post(
        url,
        ae_data(outcome="recovered", resolution_date="2026-11-03", reason="follow-up call", row_version="1"),
    )
    assert response["Location"] == event.get_absolute_url()
    event.refresh_from_db()
    assert (event.outcome, event.resolution_date, event.row_version) == ("recovered", "2026-11-03", 2)
    detail = client.get(event.get_absolute_url()).content.decode()
    assert (
        "Recovered / resolved" in detail
        and reverse("participants:adverse-event-edit", args=[event.pk]) in detail
    )


def test_concurrent_adverse_event_edit_keeps_the_users_input_and_says_so(
    participant, coordinator, investigator, signed_in
):
    event = record_ae(participant, coordinator)
    opened_at = event.row_version
    # The investigator saves first.
    safety.adverse_event_update(
        actor=investigator,
        event=AdverseEvent.objects.get(pk=event.pk),
        values={"grade": 3},
        reason="re-graded at review",
        expected_version=opened_at,
    )
    response = signed_in(coordinator).post(
        reverse("participants:adverse-event-edit", args=[event.pk]),
        ae_data(
            description="Redness 3 cm around L1, settling",
            outcome="recovered",
            resolution_date="2026-11-03",
            reason="follow-up call",
            row_version=str(opened_at),
        ),
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert str(CONFLICT_MESSAGE).replace("'", "&#x27;") in body
    assert "Redness 3 cm around L1, settling" in body and "follow-up call" in body
    conflicts = text(response).split('id="conflicts"')[1].split("</table>")[0]
    assert "CTCAE grade" in conflicts and "Grade 3: severe" in conflicts
    event.refresh_from_db()
    assert (event.grade, event.outcome, event.description) == (3, "recovering", "")
    # Saving again, having seen the other values, takes the current version.
    assert f'name="row_version" value="{event.row_version}"' in body


def test_adverse_event_list_shows_the_participants_events(participant, coordinator, monitor, signed_in):
    record_ae(participant, coordinator, grade=1)
    record_ae(participant, coordinator, term_code="other", term_text="Dizziness", grade=2)
    page = text(signed_in(monitor).get(reverse("participants:adverse-event-list", args=[participant.pk])))
    assert "Dizziness" in page and "Injection site pain or burning" in page
    assert "Report an adverse event" not in page  # monitors read only


# --- Deviations -------------------------------------------------------------------------------


def test_deviation_is_reported_and_listed_for_the_site_only(
    participant, coordinator, coordinator_b, site_a, site_b, signed_in
):
    safety.deviation_record(
        actor=coordinator_b,
        site=site_b,
        occurred_on=TODAY,
        category="consent",
        description="Other site's deviation",
    )
    client = signed_in(coordinator)
    form = client.get(reverse("participants:deviation-create")).content.decode()
    assert 'value="2026-11-03"' in form and participant.study_id in form
    response = client.post(
        reverse("participants:deviation-create"),
        {
            "site": site_a.pk,
            "participant": participant.pk,
            "occurred_on": "2026-11-02",
            "category": "visit_window",
            "description": "W0 done a day late",
            "corrective_action": "Reminder calls two days ahead",
        },
    )
    assert response.status_code == 302
    deviation = ProtocolDeviation.objects.get(site=site_a)
    assert (deviation.participant, deviation.reported_by) == (participant, coordinator)
    page = client.get(reverse("participants:deviation-list")).content.decode()
    assert "W0 done a day late" in page and "Other site&#x27;s deviation" not in page


def test_deviation_form_refuses_bad_input(participant, coordinator, site_a, site_b, signed_in):
    client = signed_in(coordinator)
    url = reverse("participants:deviation-create")
    response = client.post(
        url, {"site": site_b.pk, "occurred_on": "soon", "category": "nonsense", "description": ""}
    )
    body = response.content.decode()
    assert response.status_code == 200
    # Another site's id, an unknown category, a word for a date, no description: each named.
    assert set(response.context["form"].errors) == {"site", "category", "occurred_on", "description"}
    assert "Select a valid choice" in body and "Enter a valid date" in body and 'role="alert"' in body
    response = client.post(
        url, {"site": site_a.pk, "occurred_on": "2026-11-04", "category": "other", "description": "x"}
    )
    assert "cannot be in the future" in response.content.decode()
    assert client.get(f"{url}?participant=abc").status_code == 404
    assert not ProtocolDeviation.objects.exists()


def test_problems_of_an_adverse_event_without_http():
    ok = {"term_code": "injection_site_pain", "serious": False, "seriousness_criteria": [], "grade": 2}
    assert adverse_event_problems(ok, today=TODAY) == {}
    problems = adverse_event_problems(
        {
            **ok,
            "grade": 5,
            "serious": True,
            "seriousness_criteria": ["hospitalisation"],
            "outcome": "recovered",
        },
        today=TODAY,
    )
    assert set(problems) == {"outcome", "seriousness_criteria"}
    # A partial resolution date in the onset month is not "before the onset".
    assert (
        adverse_event_problems({**ok, "onset_date": "2026-10-20", "resolution_date": "2026-10"}, today=TODAY)
        == {}
    )


def test_changing_a_saved_ae_review_needs_a_reason(baseline, coordinator, signed_in):
    safety.ae_review_record(actor=coordinator, visit=baseline, new_events=False)
    client = signed_in(coordinator)
    url = reverse("participants:visit-ae-review", args=[baseline.pk])
    assert "Reason for change" in client.get(url).content.decode()
    response = client.post(url, {"new_events": "yes", "reason": "", "row_version": "1"})
    assert (
        response.status_code == 200
        and "Give a reason for changing a saved record" in response.content.decode()
    )
    assert AEReview.objects.get(visit=baseline).new_events is False
    response = client.post(
        url, {"new_events": "yes", "reason": "participant remembered a reaction", "row_version": "1"}
    )
    assert response.status_code == 302
    assert AEReview.objects.get(visit=baseline).new_events is True


def test_an_adverse_event_cannot_be_moved_to_another_participants_visit(
    participant, coordinator, investigator, consent_v1, site_a
):
    from django.core.exceptions import ValidationError

    other = enrol(coordinator=coordinator, investigator=investigator, document=consent_v1, site=site_a)
    event = record_ae(participant, coordinator)
    with pytest.raises(ValidationError, match="another participant"):
        safety.adverse_event_update(
            actor=coordinator,
            event=event,
            values={"reported_at_visit": other.visits.get(code="W0")},
            reason="wrong visit",
            expected_version=event.row_version,
        )
    event.refresh_from_db()
    assert event.reported_at_visit is None


def test_visit_page_counts_the_visits_questionnaires_done(participant, baseline, coordinator, signed_in):
    from pro_measures import invitations
    from pro_measures.models import Invitation
    from tests.pro_measures.answers import complete_answers

    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    planned = list(Invitation.objects.filter(visit=baseline).order_by("instrument_code"))
    assert len(planned) == 6
    for index, invitation in enumerate(planned):
        invitations.response_enter_paper(
            actor=coordinator,
            invitation=invitation,
            answers=complete_answers(invitation.instrument_code),
            completed_on=TODAY,
        )
        steps = text(signed_in(coordinator).get(baseline.get_absolute_url())).split('id="visit-steps"')[1]
        steps = steps.split("</ol>")[0]
        done = index + 1
        assert f"{done} of 6 done" in steps
        progress = "done" if done == 6 else "missing"
        assert f'data-form="pros" data-progress="{progress}"' in steps
