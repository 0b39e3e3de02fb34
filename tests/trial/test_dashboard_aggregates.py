"""The dashboard aggregates in the database (issue #9): its figures equal those of the per-record
rules computed in Python (lesions.outcomes for the primary outcome, the median of every score), and
its long lists are capped with a pointer to where the rest is."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from lesions.models import UltrasoundMeasurement
from lesions.outcomes import participant_outcome
from participants.models import Participant
from pro_measures.models import Score
from tests.participants.conftest import consent_v1, frozen_today  # noqa: F401 - fixtures
from tests.trial.test_dashboard import (  # noqa: F401 - fixtures
    coordinator,
    investigator,
    page_of,
    site_b_coordinator,
    study,
)
from tests.trial.test_synthetic import demo  # noqa: F401 - the demo data fixture
from trial import dashboard
from trial.models import User
from trial.roles import Role
from trial.synthetic import synthetic_seed

pytestmark = pytest.mark.django_db


@pytest.fixture
def cohort(demo):  # noqa: F811
    synthetic_seed(participants=16, seed=47, base_date=timezone.now().date())
    return User.objects.get(email__startswith="datamanager")


def reference_outcome(participant: Participant) -> dashboard.ParticipantChange | None:
    """The per-participant figures from lesions.outcomes (one participant at a time, in Python)."""
    totals = participant_outcome(participant.pk).totals
    if not totals:
        return None
    follow_up = [p for p in totals[1:] if p.sum_longest_diameter.percent is not None]
    last = follow_up[-1] if follow_up else None
    return dashboard.ParticipantChange(
        study_id=participant.study_id,
        last_visit=last.visit_code if last else totals[0].visit_code,
        diameter_percent=last.sum_longest_diameter.percent if last else None,
        volume_percent=last.sum_volume.percent if last else None,
        best_diameter_percent=min((p.sum_longest_diameter.percent for p in follow_up), default=None),
        diameter_by_visit={p.visit_code: p.sum_longest_diameter.percent for p in totals},
    )


def test_primary_outcome_in_the_database_equals_lesions_outcomes_for_every_participant(cohort):
    rows, pooled = dashboard.primary_outcome(
        dashboard.participant_visit_sums(UltrasoundMeasurement.objects.visible_to(cohort))
    )
    expected = [
        change
        for participant in Participant.objects.order_by("study_id")
        if (change := reference_outcome(participant)) is not None
    ]
    assert len(expected) > 10
    assert rows == expected
    by_visit = defaultdict(list)
    for change in expected:
        for code, percent in list(change.diameter_by_visit.items())[1:]:
            if percent is not None:
                by_visit[code].append(percent)
    assert {p.visit_code: (p.n, p.median_diameter_percent) for p in pooled} == {
        code: (len(values), dashboard.median(values)) for code, values in by_visit.items()
    }


def test_score_medians_in_the_database_equal_the_medians_of_every_score(cohort):
    trajectories = dashboard.score_trajectories(Score.objects.visible_to(cohort))
    values, changes = defaultdict(list), defaultdict(list)
    per_participant = defaultdict(list)
    for name, participant_id, sequence, code, value in Score.objects.filter(
        name__in=[name for name, _label in dashboard.DASHBOARD_SCORES], value__isnull=False
    ).values_list(
        "name",
        "response__invitation__participant_id",
        "response__invitation__visit__sequence",
        "response__invitation__visit__code",
        "value",
    ):
        per_participant[(name, participant_id)].append((sequence, code, value))
    for (name, _participant), points in per_participant.items():
        baseline = sorted(points)[0][2]
        for _sequence, code, value in points:
            values[(name, code)].append(value)
            changes[(name, code)].append(value - baseline)
    found = {
        (t.name, p.visit_code): (p.n, p.median_value, p.median_change) for t in trajectories for p in t.points
    }
    assert found == {
        key: (
            len(values[key]),
            Decimal(statistics.median(values[key])).quantize(Decimal("0.1")),
            Decimal(statistics.median(changes[key])).quantize(Decimal("0.1")),
        )
        for key in values
    }
    assert any(n % 2 == 0 for n, _value, _change in found.values())  # an even n: a mean of two


def test_the_page_lists_at_most_the_cap_and_says_where_the_rest_is(
    client,
    make_user,
    study,  # noqa: F811
    monkeypatch,
):
    monkeypatch.setattr(dashboard, "OUTCOME_TABLE_MAX", 1)
    monkeypatch.setattr(dashboard, "OVERDUE_LIST_MAX", 1)
    page = page_of(client, make_user(role=Role.DATA_MANAGER))
    outcome = page.split('id="outcome-participants"')[1].split("</table>")[0]
    assert outcome.count("<tr data-participant=") == 1
    assert study["p1"].study_id in outcome  # the first by study id
    more = re.search(r'<p id="outcome-more">(.*?)</p>', page)[1]
    assert "The first 1 of 3 participants by study id." in more
    assert f'href="{reverse("participants:participant-list")}"' in more
    overdue = page.split('id="overdue"')[1].split("</table>")[0]
    assert overdue.count("<tr data-visit=") == 1
    assert "The 1 longest overdue of 2 overdue visits." in page
    assert f'href="{reverse("participants:today")}"' in re.search(r'<p id="overdue-more">(.*?)</p>', page)[1]
    # The counts still cover everyone.
    assert (
        re.findall(r'<td class="text-end">(\d+)</td>', page.split('id="compliance"')[1].split("<tfoot>")[1])[
            3
        ]
        == "2"
    )


def test_under_the_cap_the_page_lists_everyone_and_points_nowhere(client, investigator, study):  # noqa: F811
    page = page_of(client, investigator)
    assert 'id="outcome-more"' not in page and 'id="overdue-more"' not in page
    assert page.split('id="outcome-participants"')[1].split("</table>")[0].count("<tr data-participant=") == 2


def test_a_large_waterfall_draws_an_even_sample_with_both_extremes_and_says_so():
    rows = [
        dashboard.ParticipantChange(f"01-{i:03d}", "W4", None, None, Decimal(i - 150), {}) for i in range(301)
    ]
    svg = dashboard.waterfall_svg(rows)
    drawn = int(re.search(r"(\d+) of 301 participants, evenly sampled in rank order", svg)[1])
    assert dashboard.WATERFALL_MAX_BARS // 2 <= drawn <= dashboard.WATERFALL_MAX_BARS + 1
    values = [float(v) for v in re.findall(r'<desc class="value">([^<]+)</desc>', svg)]
    assert len(values) == drawn
    assert values[0] == 150 and values[-1] == -150
    assert values == sorted(values, reverse=True)
    small = dashboard.waterfall_svg(rows[:40])
    assert "evenly sampled" not in small
    assert len(re.findall(r'<desc class="value">', small)) == 40
