"""Scoring functions, one per instrument (DOMAIN.md s.5). Each takes the answers keyed by item
link_id and returns {score name: Decimal or None}; None means "not scorable" (too few answers),
never zero. Tested against hand-worked examples in tests/pro_measures/test_scoring.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

Answers = Mapping[str, Any]
Scorer = Callable[[Answers], dict[str, Decimal | None]]

# HAQ-DI categories and their item counts (20 items in 8 categories).
HAQ_CATEGORY_ITEMS = {
    "dressing": 2,
    "arising": 2,
    "eating": 3,
    "walking": 2,
    "hygiene": 3,
    "reach": 2,
    "grip": 3,
    "activities": 3,
}
HAQ_MIN_CATEGORIES = 6  # HAQ-DI: no score when fewer than 6 categories are answered
THREE_PLACES = Decimal("0.001")


def single_value(link_id: str, name: str) -> Scorer:
    """The answer itself (NRS 0-10, VAS 0-100 mm)."""

    def score(answers: Answers) -> dict[str, Decimal | None]:
        value = answers.get(link_id)
        return {name: Decimal(value) if value is not None else None}

    return score


def haq_category_score(answers: Answers, category: str) -> int | None:
    """Highest item score in the category; aids/devices or help from another person raise a 0 or
    1 to 2. None when no item of the category is answered."""
    items = [answers.get(f"{category}_{n}") for n in range(1, HAQ_CATEGORY_ITEMS[category] + 1)]
    answered = [value for value in items if value is not None]
    if not answered:
        return None
    worst = max(answered)
    if (answers.get(f"{category}_aids") or answers.get(f"{category}_help")) and worst < 2:
        worst = 2
    return worst


def haq_di(answers: Answers) -> dict[str, Decimal | None]:
    """HAQ-DI = sum of category scores / number of categories answered (0-3), only when at least
    6 of the 8 categories are answered."""
    scores = [haq_category_score(answers, category) for category in HAQ_CATEGORY_ITEMS]
    answered = [s for s in scores if s is not None]
    if len(answered) < HAQ_MIN_CATEGORIES:
        return {"haq_di": None}
    value = (Decimal(sum(answered)) / Decimal(len(answered))).quantize(THREE_PLACES, rounding=ROUND_HALF_UP)
    return {"haq_di": value}


def shaq_vas(codes: tuple[str, ...], *, line_mm: int) -> Scorer:
    """Each visual analogue scale marked on a `line_mm` line is scaled to 0-3, reported separately."""

    def score(answers: Answers) -> dict[str, Decimal | None]:
        result = {}
        for code in codes:
            value = answers.get(code)
            result[code] = (
                None
                if value is None
                else (Decimal(value) * 3 / Decimal(line_mm)).quantize(THREE_PLACES, rounding=ROUND_HALF_UP)
            )
        return result

    return score


def cochin(link_ids: tuple[str, ...]) -> Scorer:
    """Cochin Hand Function Scale: the sum of the 18 items (0-5 each), 0-90; only when all answered."""

    def score(answers: Answers) -> dict[str, Decimal | None]:
        values = [answers.get(link_id) for link_id in link_ids]
        if any(value is None for value in values):
            return {"cochin": None}
        return {"cochin": Decimal(sum(values))}

    return score
