"""An enrolled participant with an e-mail address, at site A (New York), today 2026-11-03."""

from __future__ import annotations

import pytest

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
    return services.participant_enroll(
        actor=coordinator,
        screening=consented,
        enrolled_on=TODAY,
        email="jane@example.org",
        time_zone="America/New_York",
    )
