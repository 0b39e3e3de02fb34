"""Change from baseline per lesion and per participant."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lesions.outcomes import participant_outcome
from lesions.services import LesionRow, visit_lesions_save
from tests.lesions.conftest import measurement

pytestmark = pytest.mark.django_db


def test_change_from_baseline_per_lesion_and_for_the_target_lesions(participant, lesions, coordinator):
    w0, w4 = participant.visits.get(code="W0"), participant.visits.get(code="W4")
    l1, l2, l3 = lesions  # L3 is the target lesion
    visit_lesions_save(
        actor=coordinator,
        visit=w0,
        rows=[
            LesionRow(l1, measurement=measurement("10.0", "8.0", "5.0")),
            LesionRow(l3, measurement=measurement("20.0", "10.0", "6.0")),
        ],
    )
    visit_lesions_save(
        actor=coordinator,
        visit=w4,
        rows=[
            LesionRow(l1, measurement=measurement("8.0", "8.0", "5.0")),
            LesionRow(l3, measurement=measurement("15.0", "10.0", "6.0")),
        ],
    )
    outcome = participant_outcome(participant.pk)
    l1_w4 = next(t for t in outcome.lesions if t.label == "L1").points[1]
    assert l1_w4.longest_diameter.absolute == Decimal("-2.0")
    assert l1_w4.longest_diameter.percent == Decimal("-20.0")
    assert l1_w4.volume.percent == Decimal("-20.0")
    # Only the target lesion (L3) counts in the participant total.
    w4_total = outcome.totals[1]
    assert (w4_total.sum_longest_diameter.value, w4_total.sum_longest_diameter.percent) == (
        Decimal("15.0"),
        Decimal("-25.0"),
    )


def test_a_missing_lesion_gives_no_total_rather_than_a_smaller_one(participant, lesions, coordinator):
    w0, w4 = participant.visits.get(code="W0"), participant.visits.get(code="W4")
    l1, l2, _ = lesions
    for lesion in (l1, l2):
        lesion.is_target = True
        lesion.save()
    visit_lesions_save(
        actor=coordinator,
        visit=w0,
        rows=[LesionRow(l1, measurement=measurement()), LesionRow(l2, measurement=measurement())],
    )
    visit_lesions_save(actor=coordinator, visit=w4, rows=[LesionRow(l1, measurement=measurement("5.0"))])
    totals = participant_outcome(participant.pk).totals
    assert totals[0].sum_longest_diameter.value == Decimal("20.0")
    assert totals[1].sum_longest_diameter.value is None


def test_depth_not_measurable_has_no_volume_change(participant, lesions, coordinator):
    w0, w4 = participant.visits.get(code="W0"), participant.visits.get(code="W4")
    visit_lesions_save(actor=coordinator, visit=w0, rows=[LesionRow(lesions[0], measurement=measurement())])
    visit_lesions_save(
        actor=coordinator, visit=w4, rows=[LesionRow(lesions[0], measurement=measurement(depth=None))]
    )
    point = participant_outcome(participant.pk).lesions[0].points[1]
    assert point.volume.percent is None and point.longest_diameter.percent == Decimal("0.0")
