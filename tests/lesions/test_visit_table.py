"""Measurements and injections at a visit: computed volume and dose, safety gates, conflicts."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import safety
from tests.lesions.conftest import TODAY, injection, measurement
from trial.audit import event_model_for
from trial.protocol import PROTOCOL

pytestmark = pytest.mark.django_db


@pytest.fixture
def baseline(participant):
    return participant.visits.get(code="W0")


@pytest.fixture
def negative_test(participant, coordinator):
    return safety.pregnancy_test_record(
        actor=coordinator, participant=participant, test_type="urine_hcg", test_date=TODAY, result="negative"
    )


def test_volume_is_computed_as_a_prolate_ellipsoid(lesions, baseline, coordinator):
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesions[0], measurement=measurement("12.3", "7.1", "4.4"))],
    )
    saved = UltrasoundMeasurement.objects.get(lesion=lesions[0], visit=baseline)
    assert float(saved.volume_mm3) == pytest.approx(math.pi / 6 * 12.3 * 7.1 * 4.4, abs=0.05)
    assert saved.longest_diameter_mm == Decimal("12.3")


def test_depth_not_measurable_gives_no_volume(lesions, baseline, coordinator):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement(depth=None))]
    )
    saved = UltrasoundMeasurement.objects.get(lesion=lesions[0], visit=baseline)
    assert saved.volume_mm3 is None and saved.depth_not_measurable_reason == "shadowing"


@pytest.mark.parametrize("length", ["0", "-1", "200.1", "5000"])
def test_implausible_dimension_is_refused(lesions, baseline, coordinator, length):
    with pytest.raises(ValidationError):
        visit_lesions_save(
            actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement(length))]
        )
    assert not UltrasoundMeasurement.objects.exists()


def test_the_database_refuses_an_implausible_value_too(lesions, baseline):
    with pytest.raises(IntegrityError), transaction.atomic():
        UltrasoundMeasurement.objects.create(lesion=lesions[0], visit=baseline, **measurement("250"))


def test_a_three_lesion_injection_visit_saves_in_one_call(lesions, baseline, coordinator, negative_test):
    result = visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[
            LesionRow(lesion, measurement=measurement(), injection=injection("0.50")) for lesion in lesions
        ],
    )
    assert len(result.measurements) == 3 and len(result.injections) == 3
    assert [i.dose_mg for i in Injection.objects.order_by("lesion__label")] == [Decimal("125.00")] * 3


def test_no_injection_without_a_recent_negative_pregnancy_test(lesions, baseline, coordinator, participant):
    with pytest.raises(ValidationError, match="negative pregnancy test"):
        visit_lesions_save(
            actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection())]
        )
    too_old = TODAY - dt.timedelta(days=PROTOCOL.dosing.pregnancy_test_days_before_injection + 1)
    safety.pregnancy_test_record(
        actor=coordinator,
        participant=participant,
        test_type="urine_hcg",
        test_date=too_old,
        result="negative",
    )
    with pytest.raises(ValidationError, match="negative pregnancy test"):
        visit_lesions_save(
            actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection())]
        )
    assert not Injection.objects.exists()


def test_a_positive_test_blocks_the_injection(lesions, baseline, coordinator, participant, negative_test):
    safety.pregnancy_test_record(
        actor=coordinator, participant=participant, test_type="serum_hcg", test_date=TODAY, result="positive"
    )
    with pytest.raises(ValidationError, match="positive pregnancy test"):
        visit_lesions_save(
            actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection())]
        )


def test_per_lesion_volume_limit_is_a_hard_limit(lesions, baseline, coordinator, negative_test):
    limit = PROTOCOL.dosing.max_volume_per_lesion_ml
    with pytest.raises(ValidationError, match="limit of"):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            rows=[LesionRow(lesions[0], injection=injection(str(limit + Decimal("0.01"))))],
        )
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection(str(limit)))]
    )


def test_session_total_dose_cap_refuses_the_whole_table(lesions, baseline, coordinator, negative_test):
    cap = PROTOCOL.dosing.max_total_dose_per_session_mg  # 2500 mg = 10 mL at 250 mg/mL
    per_lesion = PROTOCOL.dosing.max_volume_per_lesion_ml  # 2 mL = 500 mg
    extra = [
        Lesion.objects.create(
            participant=lesions[0].participant,
            label=f"X{i}",
            anatomical_site="trunk",
            laterality="midline",
            first_seen_on=TODAY,
        )
        for i in range(3)
    ]
    rows = [
        LesionRow(lesion, injection=injection(str(per_lesion))) for lesion in [*lesions, *extra]
    ]  # 6 x 500 mg
    assert len(rows) * per_lesion * PROTOCOL.dosing.default_concentration_mg_per_ml > cap
    with pytest.raises(ValidationError, match="at most"):
        visit_lesions_save(actor=coordinator, visit=baseline, rows=rows)
    assert not Injection.objects.exists()
    visit_lesions_save(actor=coordinator, visit=baseline, rows=rows[:5])
    assert Injection.objects.count() == 5


def test_follow_up_visit_takes_no_injections(lesions, participant, coordinator, negative_test):
    follow_up = participant.visits.get(code="W16")
    with pytest.raises(ValidationError, match="No injections"):
        visit_lesions_save(
            actor=coordinator, visit=follow_up, rows=[LesionRow(lesions[0], injection=injection())]
        )


def test_editing_a_saved_row_needs_a_reason_and_is_audited(lesions, baseline, coordinator):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    saved = UltrasoundMeasurement.objects.get()
    with pytest.raises(ValidationError, match="reason"):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            rows=[
                LesionRow(lesions[0], measurement=measurement("11.0"), measurement_version=saved.row_version)
            ],
        )
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        reason="re-measured on the stored image",
        rows=[LesionRow(lesions[0], measurement=measurement("11.0"), measurement_version=saved.row_version)],
    )
    events = event_model_for(UltrasoundMeasurement).objects.filter(pgh_obj_id=saved.pk).order_by("pgh_id")
    assert [e.length_mm for e in events] == [Decimal("10.0"), Decimal("11.0")]
    assert events.last().pgh_context["reason"] == "re-measured on the stored image"


def test_second_of_two_concurrent_edits_gets_a_conflict(lesions, baseline, coordinator):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    opened_at = UltrasoundMeasurement.objects.get().row_version
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        reason="first editor",
        rows=[LesionRow(lesions[0], measurement=measurement("11.0"), measurement_version=opened_at)],
    )
    with pytest.raises(ValidationError, match="Someone else saved"):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            reason="second editor",
            rows=[LesionRow(lesions[0], measurement=measurement("12.0"), measurement_version=opened_at)],
        )
    assert UltrasoundMeasurement.objects.get().length_mm == Decimal("11.0")


def test_large_change_since_last_visit_is_a_warning_not_a_refusal(
    lesions, participant, baseline, coordinator
):
    visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement("10.0"))]
    )
    w4 = participant.visits.get(code="W4")
    result = visit_lesions_save(
        actor=coordinator, visit=w4, rows=[LesionRow(lesions[0], measurement=measurement("16.0"))]
    )
    assert any("more than 50%" in w for w in result.warnings)
    assert UltrasoundMeasurement.objects.filter(visit=w4).exists()


def test_a_lesion_of_another_participant_is_refused(lesions, baseline, coordinator, screen):
    from participants.models import Participant

    other = Participant.objects.exclude(pk=baseline.participant_id)
    assert not other.exists()
    stranger = Lesion(pk=10**9, label="S1")
    with pytest.raises(ValidationError, match="does not belong"):
        visit_lesions_save(
            actor=coordinator, visit=baseline, rows=[LesionRow(stranger, measurement=measurement())]
        )


def test_correcting_an_injections_pain_score_later_is_not_blocked_by_the_pregnancy_window(
    lesions, baseline, coordinator, negative_test
):
    import time_machine

    visit_lesions_save(actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection())])
    saved = Injection.objects.get()
    later = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)  # the test is now 17 days old
    with time_machine.travel(later, tick=False):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            reason="pain score misread",
            rows=[
                LesionRow(
                    lesions[0], injection=injection(immediate_pain=5), injection_version=saved.row_version
                )
            ],
        )
        with pytest.raises(ValidationError, match="negative pregnancy test"):
            visit_lesions_save(
                actor=coordinator,
                visit=baseline,
                reason="more given",
                rows=[
                    LesionRow(
                        lesions[0], injection=injection("1.50"), injection_version=saved.row_version + 1
                    )
                ],
            )
    assert Injection.objects.get().immediate_pain == 5


def test_a_resolved_lesion_is_no_longer_measured(lesions, participant, coordinator):
    from lesions.services import lesion_update

    lesion_update(
        actor=coordinator,
        lesion=lesions[1],
        data={"resolved_on": dt.date(2026, 10, 1)},
        reason="healed",
        expected_version=lesions[1].row_version,
    )
    with pytest.raises(ValidationError, match="no longer measured"):
        visit_lesions_save(
            actor=coordinator,
            visit=participant.visits.get(code="W0"),
            rows=[LesionRow(lesions[1], measurement=measurement())],
        )


def test_a_monitor_cannot_save_the_table(lesions, baseline, make_user, site_a):
    from django.core.exceptions import PermissionDenied

    from trial.roles import Role

    monitor = make_user(role=Role.MONITOR, sites=[site_a])
    with pytest.raises(PermissionDenied):
        visit_lesions_save(
            actor=monitor, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement())]
        )


def test_the_warning_compares_with_the_last_visit_before_this_one(
    lesions, participant, baseline, coordinator
):
    """Each lesion with its own last measurement before the visit: a later visit measured
    already (W8) is not "last" for an entry at W4."""
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[
            LesionRow(lesions[0], measurement=measurement("10.0")),
            LesionRow(lesions[1], measurement=measurement("20.0", depth=None)),
        ],
    )
    visit_lesions_save(
        actor=coordinator,
        visit=participant.visits.get(code="W8"),
        rows=[LesionRow(lesions[0], measurement=measurement("16.0"))],
    )
    result = visit_lesions_save(
        actor=coordinator,
        visit=participant.visits.get(code="W4"),
        rows=[
            LesionRow(lesions[0], measurement=measurement("16.0")),
            LesionRow(lesions[1], measurement=measurement("21.0", "8.0", "4.0")),
        ],
    )
    assert result.warnings == [
        "L1: length (mm) changed from 10.0 to 16.0 (more than 50% since W0). Please check."
    ]


def test_a_coordinator_of_another_site_cannot_save_the_table(lesions, baseline, make_user, site_b):
    from django.core.exceptions import PermissionDenied

    from trial.roles import Role

    elsewhere = make_user(role=Role.COORDINATOR, sites=[site_b])
    with pytest.raises(PermissionDenied):
        visit_lesions_save(
            actor=elsewhere, visit=baseline, rows=[LesionRow(lesions[0], measurement=measurement())]
        )
    assert not UltrasoundMeasurement.objects.exists()


def test_no_pregnancy_test_is_needed_without_child_bearing_potential(
    lesions, participant, baseline, coordinator
):
    from participants.models import EligibilityAssessment

    EligibilityAssessment.objects.filter(screening__participant=participant).update(
        childbearing_potential=False
    )
    result = visit_lesions_save(
        actor=coordinator, visit=baseline, rows=[LesionRow(lesions[0], injection=injection("0.50"))]
    )
    assert [i.volume_ml for i in result.injections] == [Decimal("0.50")]


def test_the_tables_prepared_read_is_the_querysets_read(
    lesions, participant, baseline, coordinator, negative_test
):
    """The table's lesions read once compiled (trial.prepared_queries) gives what the queryset it
    is built from gives - rows, records at the visit, last earlier measurement - at every visit."""
    from lesions.services import visit_table_lesions

    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[
            LesionRow(lesions[0], measurement=measurement("10.0"), injection=injection("0.50")),
            LesionRow(lesions[1], measurement=measurement("20.0", depth=None)),
        ],
    )
    week_4 = participant.visits.get(code="W4")
    visit_lesions_save(
        actor=coordinator, visit=week_4, rows=[LesionRow(lesions[0], measurement=measurement("9.0"))]
    )

    def seen(found):
        rows = []
        for lesion in sorted(found, key=lambda lesion: lesion.label):
            m = getattr(lesion, "measurement_at_visit", None)
            i = getattr(lesion, "injection_at_visit", None)
            rows.append(
                (
                    lesion.pk,
                    lesion.label,
                    lesion.row_version,
                    lesion.participant_id,
                    m and (m.pk, m.length_mm, m.depth_mm, m.row_version, m.lesion_id),
                    i and (i.pk, i.volume_ml, i.row_version),
                    lesion.previous_measurement,
                )
            )
        return rows

    for visit, day in [(baseline, TODAY), (week_4, TODAY), (week_4, TODAY - dt.timedelta(days=400))]:
        prepared = visit_table_lesions(visit, day)
        assert seen(prepared) == seen(Lesion.objects.in_visit_table(visit, day))
    at_week_4 = {lesion.label: lesion for lesion in visit_table_lesions(week_4, TODAY)}
    assert at_week_4["L1"].measurement_at_visit.length_mm == Decimal("9.0")
    assert at_week_4["L1"].previous_measurement == {
        "length_mm": "10.0",
        "width_mm": "8.0",
        "depth_mm": "5.0",
        "visit": "W0",
    }
    assert not hasattr(at_week_4["L2"], "measurement_at_visit")
