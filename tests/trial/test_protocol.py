"""The protocol's eligibility criteria at their boundaries (DOMAIN.md s.2)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from trial.protocol import PROTOCOL, age_in_years, anniversary

SCREENING_DAY = dt.date(2026, 11, 3)


def answers(**overrides) -> SimpleNamespace:
    values = {
        "date_of_birth": dt.date(1970, 5, 17),
        "screening_date": SCREENING_DAY,
        "diagnosis": "ssc",
        "capable_of_consent": True,
        "calcinosis_evidence": True,
        "calcinosis_modality": "ultrasound",
        "calcinosis_evidence_date": dt.date(2026, 10, 1),
        "needs_symptomatic_relief": True,
        "childbearing_potential": False,
        "pregnancy_test_date": None,
        "pregnancy_test_result": "",
        "non_childbearing_reason": "post_menopausal",
    }
    values.update(overrides)
    return SimpleNamespace(**values)


def failing(result) -> list[str]:
    return [r.code for r in result.failing]


def test_all_criteria_met_is_eligible():
    result = PROTOCOL.assess(answers())
    assert result.is_eligible and result.status == "eligible"


def test_exactly_18_on_the_screening_date_is_not_over_18():
    result = PROTOCOL.assess(answers(date_of_birth=dt.date(2008, 11, 3)))
    assert failing(result) == ["IN2"]
    assert "Not over 18" in result.failing[0].finding.explanation


def test_18_and_one_day_is_over_18():
    assert PROTOCOL.assess(answers(date_of_birth=dt.date(2008, 11, 2))).is_eligible


def test_leap_day_birthday_turns_18_on_1_march():
    born = dt.date(2008, 2, 29)
    imaged = dt.date(2026, 1, 5)
    assert anniversary(born, 18) == dt.date(2026, 3, 1)
    on_birthday = answers(
        date_of_birth=born, screening_date=dt.date(2026, 3, 1), calcinosis_evidence_date=imaged
    )
    day_after = answers(
        date_of_birth=born, screening_date=dt.date(2026, 3, 2), calcinosis_evidence_date=imaged
    )
    assert failing(PROTOCOL.assess(on_birthday)) == ["IN2"]
    assert PROTOCOL.assess(day_after).is_eligible
    assert age_in_years(born, dt.date(2026, 2, 28)) == 17


@pytest.mark.parametrize(
    ("diagnosis", "eligible"), [("ssc", True), ("mctd", True), ("iim", True), ("other", False)]
)
def test_diagnosis(diagnosis, eligible):
    assert PROTOCOL.assess(answers(diagnosis=diagnosis)).is_eligible is eligible


@pytest.mark.parametrize(
    ("field", "code"),
    [("capable_of_consent", "IN3"), ("calcinosis_evidence", "IN4"), ("needs_symptomatic_relief", "IN5")],
)
def test_a_no_fails_the_named_criterion(field, code):
    assert failing(PROTOCOL.assess(answers(**{field: False}))) == [code]


def test_unanswered_is_incomplete_not_eligible():
    result = PROTOCOL.assess(answers(capable_of_consent=None))
    assert result.status == "incomplete" and not result.is_eligible
    assert [r.code for r in result.unanswered] == ["IN3"]


def test_imaging_after_screening_fails():
    assert failing(PROTOCOL.assess(answers(calcinosis_evidence_date=dt.date(2026, 11, 4)))) == ["IN4"]


def woman(test_date, result="negative"):
    return answers(
        childbearing_potential=True,
        non_childbearing_reason="",
        pregnancy_test_date=test_date,
        pregnancy_test_result=result,
    )


def test_pregnancy_test_inside_the_window_is_accepted():
    window = PROTOCOL.eligibility.pregnancy_test_window_days
    assert PROTOCOL.assess(woman(SCREENING_DAY - dt.timedelta(days=window))).is_eligible
    assert PROTOCOL.assess(woman(SCREENING_DAY + dt.timedelta(days=window))).is_eligible


def test_pregnancy_test_outside_the_window_is_not_accepted():
    window = PROTOCOL.eligibility.pregnancy_test_window_days
    result = PROTOCOL.assess(woman(SCREENING_DAY - dt.timedelta(days=window + 1)))
    assert failing(result) == ["EX1"]
    assert "must be within" in result.failing[0].finding.explanation


def test_positive_pregnancy_test_excludes():
    assert failing(PROTOCOL.assess(woman(SCREENING_DAY, "positive"))) == ["EX1"]


def test_not_of_childbearing_potential_needs_a_documented_reason():
    result = PROTOCOL.assess(answers(non_childbearing_reason=""))
    assert result.status == "incomplete"
