"""Every instrument's score against hand-worked examples (DOMAIN.md s.5)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pro_measures.instruments import (
    ACTIVITY_VAS,
    COCHIN,
    HAQ_DI,
    INSTRUMENTS,
    PAIN_NRS,
    PATIENT_GLOBAL,
    SHAQ_VAS,
)


def haq(**categories):
    """categories: name -> (item scores tuple, aids, help)."""
    answers = {}
    for name, (items, aids, helped) in categories.items():
        for n, value in enumerate(items, start=1):
            if value is not None:
                answers[f"{name}_{n}"] = value
        if aids:
            answers[f"{name}_aids"] = True
        if helped:
            answers[f"{name}_help"] = True
    return answers


ALL_ZERO = {
    "dressing": ((0, 0), False, False),
    "arising": ((0, 0), False, False),
    "eating": ((0, 0, 0), False, False),
    "walking": ((0, 0), False, False),
    "hygiene": ((0, 0, 0), False, False),
    "reach": ((0, 0), False, False),
    "grip": ((0, 0, 0), False, False),
    "activities": ((0, 0, 0), False, False),
}


def test_haq_di_is_the_mean_of_the_worst_item_per_category():
    # Hand-worked: category maxima 1,0,2,1,3,0,2,1 -> sum 10 / 8 = 1.25
    answers = haq(
        dressing=((1, 0), False, False),
        arising=((0, 0), False, False),
        eating=((2, 1, 0), False, False),
        walking=((1, 1), False, False),
        hygiene=((3, 0, 1), False, False),
        reach=((0, 0), False, False),
        grip=((2, 2, 1), False, False),
        activities=((1, 0, 0), False, False),
    )
    assert HAQ_DI.score(answers) == {"haq_di": Decimal("1.250")}


def test_haq_di_aids_or_help_raise_a_category_to_2():
    # dressing 1 with aids -> 2; walking 0 with help -> 2; eating 3 with aids stays 3.
    # maxima: 2,0,3,2,0,0,0,0 -> 7 / 8 = 0.875
    answers = haq(
        **{
            **ALL_ZERO,
            "dressing": ((1, 0), True, False),
            "walking": ((0, 0), False, True),
            "eating": ((3, 0, 0), True, False),
        }
    )
    assert HAQ_DI.score(answers) == {"haq_di": Decimal("0.875")}


def test_haq_di_aids_alone_do_not_answer_a_category():
    answers = haq(
        **{**ALL_ZERO, "grip": ((None, None, None), True, False), "reach": ((None, None), True, True)}
    )
    # 6 categories answered, all 0 -> 0.000 (the aid-only categories do not count)
    assert HAQ_DI.score(answers) == {"haq_di": Decimal("0.000")}


def test_haq_di_needs_six_categories():
    five = {k: v for k, v in list(ALL_ZERO.items())[:5]}
    assert HAQ_DI.score(haq(**five)) == {"haq_di": None}
    six = {k: v for k, v in list(ALL_ZERO.items())[:6]}
    assert HAQ_DI.score(haq(**six)) == {"haq_di": Decimal("0.000")}


def test_haq_di_divides_by_the_categories_answered():
    # 7 categories: maxima 3,3,3,3,3,3,2 -> 20 / 7 = 2.857
    seven = {k: ((3,) + (0,) * (len(v[0]) - 1), False, False) for k, v in list(ALL_ZERO.items())[:6]}
    seven["grip"] = ((2, 0, 0), False, False)
    assert HAQ_DI.score(haq(**seven)) == {"haq_di": Decimal("2.857")}


def test_haq_di_has_20_items_in_8_categories():
    scored = [i for i in HAQ_DI.items if not i.link_id.endswith(("_aids", "_help"))]
    assert len(scored) == 20 and len(HAQ_DI.sections) == 8


def test_shaq_vas_scales_15_cm_lines_to_0_3():
    answers = {
        "shaq_pain": 75,
        "shaq_intestinal": 0,
        "shaq_breathing": 150,
        "shaq_raynauds": 50,
        "shaq_ulcers": 1,
    }
    scores = SHAQ_VAS.score(answers)
    assert scores["shaq_pain"] == Decimal("1.500")
    assert scores["shaq_intestinal"] == Decimal("0.000")
    assert scores["shaq_breathing"] == Decimal("3.000")
    assert scores["shaq_raynauds"] == Decimal("1.000")
    assert scores["shaq_ulcers"] == Decimal("0.020")
    assert scores["shaq_severity"] is None


def test_cochin_is_the_sum_of_18_items_and_needs_all():
    answers = {f"q{n}": n % 6 for n in range(1, 19)}  # 1,2,3,4,5,0,1,2,3,4,5,0,1,2,3,4,5,0 -> 45
    assert COCHIN.score(answers) == {"cochin": Decimal(45)}
    assert COCHIN.score({f"q{n}": 5 for n in range(1, 19)}) == {"cochin": Decimal(90)}
    del answers["q18"]
    assert COCHIN.score(answers) == {"cochin": None}
    assert len(COCHIN.items) == 18


@pytest.mark.parametrize(
    ("instrument", "link_id", "value"),
    [(PAIN_NRS, "pain", 7), (PATIENT_GLOBAL, "global", 0), (ACTIVITY_VAS, "activity", 63)],
)
def test_single_scale_instruments_score_the_answer(instrument, link_id, value):
    (name,) = [s.name for s in instrument.scores]
    assert instrument.score({link_id: value}) == {name: Decimal(value)}
    assert instrument.score({}) == {name: None}


@pytest.mark.parametrize("bad", [{"pain": 11}, {"pain": -1}, {"pain": "7"}, {"pain": True}, {"nope": 1}])
def test_invalid_answers_are_refused(bad):
    with pytest.raises(ValueError):
        PAIN_NRS.clean_answers(bad)


def test_every_instrument_has_a_version_licence_and_scores():
    for code, instrument in INSTRUMENTS.items():
        assert instrument.version and str(instrument.licence_note) and instrument.scores, code
        assert set(instrument.score({})) == {s.name for s in instrument.scores}, code
