"""An enrolled participant with three lesions, at site A, today 2026-11-03."""

from __future__ import annotations

import datetime as dt

import pytest

from lesions import services as lesion_services
from participants import services
from tests.participants.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    screen,
)


@pytest.fixture
def participant(consented, coordinator):  # noqa: F811
    return services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


@pytest.fixture
def lesions(participant, coordinator):  # noqa: F811
    specs = [
        {
            "label": "L1",
            "anatomical_site": "hand_digit",
            "digit": "index",
            "phalanx": "distal",
            "laterality": "right",
        },
        {"label": "L2", "anatomical_site": "elbow", "laterality": "left"},
        {"label": "L3", "anatomical_site": "knee", "laterality": "right", "is_target": True},
    ]
    return [
        lesion_services.lesion_add(
            actor=coordinator, participant=participant, first_seen_on=dt.date(2026, 9, 1), **spec
        )
        for spec in specs
    ]


def measurement(length="10.0", width="8.0", depth="5.0", **extra):
    from decimal import Decimal

    values = {
        "length_mm": Decimal(length),
        "width_mm": Decimal(width),
        "depth_mm": Decimal(depth) if depth is not None else None,
        "depth_not_measurable_reason": "" if depth is not None else "shadowing",
        "posterior_shadowing": depth is None,
        "overlying_ulceration": False,
        "doppler_signal": "none",
        "operator": "Casey Coordinator",
        "device": "Demo US-1",
    }
    values.update(extra)
    return values


def injection(volume="1.00", **extra):
    from decimal import Decimal

    values = {
        "volume_ml": Decimal(volume),
        "local_anaesthetic_mixed": True,
        "needle_gauge": 27,
        "ultrasound_guided": True,
        "immediate_pain": 3,
        "immediate_complications": [],
    }
    values.update(extra)
    return values
