"""A completed baseline visit (site A, 3 November 2026) and the people who monitor it."""

from __future__ import annotations

import pytest

from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    participant,
    screen,
    visit_data,
)
from trial.roles import Role


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a], full_name="Mona Monitor")


@pytest.fixture
def data_manager(make_user):
    return make_user(role=Role.DATA_MANAGER, full_name="Dana Datamanager")


@pytest.fixture
def monitor_b(make_user, site_b):
    return make_user(role=Role.MONITOR, sites=[site_b], full_name="Bo Otherside")
