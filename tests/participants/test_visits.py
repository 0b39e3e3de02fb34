"""Visit planning from the protocol schedule, window arithmetic, site time zones and the today list."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from participants import services, visits
from participants.models import Visit, VisitState, VisitStatus
from tests.participants.conftest import TODAY
from trial.protocol import PROTOCOL, Form, schedule_problems

pytestmark = pytest.mark.django_db


@pytest.fixture
def participant(consented, coordinator):
    return services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


def test_enrolment_plans_every_visit_with_its_window(participant):
    planned = {v.code: (v.window_opens, v.target_date, v.window_closes) for v in participant.visits.all()}
    assert list(planned) == ["W0", "W4", "W8", "W12", "W16", "W24"]
    assert planned["W0"] == (TODAY, TODAY, TODAY + dt.timedelta(days=7))
    assert planned["W4"] == (dt.date(2026, 11, 24), dt.date(2026, 12, 1), dt.date(2026, 12, 8))
    assert planned["W24"] == (dt.date(2027, 4, 6), dt.date(2027, 4, 20), dt.date(2027, 5, 4))
    assert {v.protocol_version for v in participant.visits.all()} == {PROTOCOL.version}


def test_window_edges_are_inclusive(participant):
    w4 = participant.visits.get(code="W4")
    assert w4.state_on(w4.window_opens - dt.timedelta(days=1)) == VisitState.PLANNED
    assert w4.state_on(w4.window_opens) == VisitState.DUE
    assert w4.state_on(w4.window_closes) == VisitState.DUE
    assert w4.state_on(w4.window_closes + dt.timedelta(days=1)) == VisitState.OVERDUE
    assert list(Visit.objects.overdue_on(w4.window_closes)) == [participant.visits.get(code="W0")]
    assert w4 in Visit.objects.overdue_on(w4.window_closes + dt.timedelta(days=1))


def test_completing_baseline_replans_later_visits_from_its_date(participant, coordinator):
    baseline = participant.visits.get(code="W0")
    with time_machine.travel(dt.datetime(2026, 11, 6, 15, 0, tzinfo=dt.UTC), tick=False):
        visits.visit_complete(actor=coordinator, visit=baseline, visit_date=dt.date(2026, 11, 6))
    w4 = participant.visits.get(code="W4")
    assert w4.target_date == dt.date(2026, 12, 4)
    assert (w4.window_opens, w4.window_closes) == (dt.date(2026, 11, 27), dt.date(2026, 12, 11))


def test_visit_cannot_be_completed_in_the_future_or_twice(participant, coordinator):
    baseline = participant.visits.get(code="W0")
    with pytest.raises(ValidationError, match="future"):
        visits.visit_complete(actor=coordinator, visit=baseline, visit_date=TODAY + dt.timedelta(days=1))
    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=TODAY)
    with pytest.raises(ValidationError, match="already"):
        visits.visit_complete(actor=coordinator, visit=baseline, visit_date=TODAY)


def test_missed_visit_needs_a_reason(participant, coordinator):
    w0 = participant.visits.get(code="W0")
    with pytest.raises(ValidationError):
        visits.visit_miss(actor=coordinator, visit=w0, reason=" ")
    missed = visits.visit_miss(actor=coordinator, visit=w0, reason="admitted to hospital")
    assert missed.status == VisitStatus.MISSED
    assert missed.state_on(TODAY) == VisitState.MISSED


def test_unscheduled_visits_are_numbered(participant, coordinator):
    first = visits.visit_add_unscheduled(
        actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
    )
    second = visits.visit_add_unscheduled(
        actor=coordinator, participant=participant, visit_date=TODAY, reason="ulcer"
    )
    assert (first.code, second.code) == ("UNS-1", "UNS-2")
    assert Form.MEASUREMENTS in first.expected_forms(childbearing_potential=False)


def test_pregnancy_test_expected_only_for_women_of_childbearing_potential(participant):
    w4 = participant.visits.get(code="W4")
    assert Form.PREGNANCY_TEST in w4.expected_forms(childbearing_potential=True)
    assert Form.PREGNANCY_TEST not in w4.expected_forms(childbearing_potential=False)
    assert Form.INJECTIONS not in participant.visits.get(code="W16").expected_forms(
        childbearing_potential=True
    )


def test_today_is_the_sites_local_date_across_a_daylight_saving_change(site_a):
    # New York springs forward at 07:00 UTC on 8 March 2026. At 04:30 UTC it is 23:30 EST on
    # 7 March there, while it is already 8 March in London.
    site_a.time_zone = "America/New_York"
    instant = dt.datetime(2026, 3, 8, 4, 30, tzinfo=dt.UTC)
    assert visits.site_today(site_a, now=instant) == dt.date(2026, 3, 7)
    after_change = dt.datetime(2026, 3, 8, 7, 30, tzinfo=dt.UTC)  # 03:30 EDT
    assert visits.site_today(site_a, now=after_change) == dt.date(2026, 3, 8)
    site_a.time_zone = "Europe/London"
    assert visits.site_today(site_a, now=instant) == dt.date(2026, 3, 8)


def test_window_arithmetic_is_in_whole_days_across_daylight_saving():
    w4 = PROTOCOL.visit("W4")
    opens, target, closes = w4.window(dt.date(2026, 2, 10))  # spans the US change on 8 March
    assert (opens, target, closes) == (dt.date(2026, 3, 3), dt.date(2026, 3, 10), dt.date(2026, 3, 17))


def test_today_list_uses_each_sites_own_date(participant, coordinator):
    w0 = participant.visits.get(code="W0")
    # 4 Nov 02:00 UTC is still 3 Nov in New York (site A): baseline is due today there.
    result = visits.today_list(user=coordinator, now=dt.datetime(2026, 11, 4, 2, 0, tzinfo=dt.UTC))
    assert list(result.due_today) == [w0]
    assert result.counts == {"due_today": 1, "in_window": 0, "overdue": 0}
    result = visits.today_list(user=coordinator, now=dt.datetime(2026, 11, 12, 15, 0, tzinfo=dt.UTC))
    assert list(result.overdue) == [w0] and list(result.due_today) == []
    assert result.counts == {"due_today": 0, "in_window": 0, "overdue": 1}


def test_today_list_query_count_does_not_grow(
    screen, coordinator, investigator, consent_v1, make_user, site_a
):
    from django.utils import timezone

    from tests.factories import ELIGIBLE_ANSWERS

    def enrol(n):
        for i in range(n):
            screening = screen(first_name=f"P{i}")
            services.eligibility_record(
                actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS)
            )
            services.eligibility_confirm(actor=investigator, screening=screening)
            services.consent_record(
                actor=coordinator,
                screening=screening,
                document=consent_v1,
                consented_at=timezone.now(),
                participant_signature=f"P{i} Doe",
                attestation=True,
                copy_given=True,
            )
            services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)

    def count():
        with CaptureQueriesContext(connection) as ctx:
            result = visits.today_list(user=coordinator)
            pages = [list(section[:50]) for section in (result.due_today, result.in_window, result.overdue)]
            [v.participant.site.code for page in pages for v in page]
        return len(ctx.captured_queries), result.counts["due_today"]

    enrol(2)
    small = count()
    enrol(10)
    large = count()
    assert small[0] == large[0]
    assert (small[1], large[1]) == (2, 12)


def test_overlapping_windows_are_rejected_by_the_start_up_check():
    w4 = PROTOCOL.visit("W4")
    wide = dataclasses.replace(w4, window_before_days=30)
    schedule = tuple(wide if v.code == "W4" else v for v in PROTOCOL.schedule)
    assert any("overlap" in p for p in schedule_problems(schedule, PROTOCOL.unscheduled_visit))
    assert schedule_problems(PROTOCOL.schedule, PROTOCOL.unscheduled_visit) == []


def test_unknown_form_is_rejected_by_the_start_up_check():
    w4 = dataclasses.replace(PROTOCOL.visit("W4"), forms=frozenset({"x_ray_dance"}))
    schedule = tuple(w4 if v.code == "W4" else v for v in PROTOCOL.schedule)
    assert any("unknown forms" in p for p in schedule_problems(schedule, PROTOCOL.unscheduled_visit))
