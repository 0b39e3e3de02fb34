"""Complete answer sets and invitations for tests of the staff pages, the timeline and FHIR."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pro_measures.instruments import INSTRUMENTS, ItemKind
from pro_measures.models import Invitation

# HAQ-DI worked by hand: dressing max 1 raised to 2 by aids; arising 0; eating 2; walking 1;
# hygiene 0 raised to 2 by help; reach 3; grip 1; activities 0 -> 11 / 8 = 1.375.
HAQ_WORKED = {
    "dressing_1": 1,
    "dressing_2": 0,
    "dressing_aids": True,
    "arising_1": 0,
    "arising_2": 0,
    "eating_1": 2,
    "eating_2": 1,
    "eating_3": 0,
    "walking_1": 0,
    "walking_2": 1,
    "hygiene_1": 0,
    "hygiene_2": 0,
    "hygiene_3": 0,
    "hygiene_help": True,
    "reach_1": 3,
    "reach_2": 0,
    "grip_1": 1,
    "grip_2": 1,
    "grip_3": 1,
    "activities_1": 0,
    "activities_2": 0,
    "activities_3": 0,
}


def complete_answers(code: str, *, choice: int = 0, scale: int = 5, vas: int = 50) -> dict[str, Any]:
    """Every required item of the instrument answered with the same value of its kind."""
    answers: dict[str, Any] = {}
    for item in INSTRUMENTS[code].items:
        if item.kind == ItemKind.CHOICE:
            answers[item.link_id] = choice
        elif item.kind == ItemKind.NUMERIC_SCALE:
            answers[item.link_id] = scale
        elif item.kind == ItemKind.VISUAL_ANALOGUE:
            answers[item.link_id] = vas
    return answers


def as_post(answers: dict[str, Any], **extra) -> dict[str, str]:
    """The staff paper form's POST data for a set of answers."""
    data = {
        link_id: ("yes" if value else "no") if isinstance(value, bool) else str(value)
        for link_id, value in answers.items()
    }
    data.update(extra)
    return data


def invite(visit, code: str) -> Invitation:
    """An invitation for a visit that the planner does not cover (an unscheduled one)."""
    zone = visit.participant.zone
    return Invitation.objects.create(
        participant=visit.participant,
        visit=visit,
        instrument_code=code,
        instrument_version=INSTRUMENTS[code].version,
        opens_at=dt.datetime.combine(visit.window_opens, dt.time(9), tzinfo=zone),
        valid_until=dt.datetime.combine(visit.window_closes, dt.time(23, 59), tzinfo=zone),
    )
