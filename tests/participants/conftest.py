"""Fixtures for screening, consent and enrolment: a coordinator and an investigator at site A."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from participants import services
from tests.factories import ELIGIBLE_ANSWERS, pdf_upload
from trial.roles import Role

TODAY = dt.date(2026, 11, 3)


@pytest.fixture(autouse=True)
def frozen_today():
    """Screening happens on 3 November 2026 (15:00 UTC) unless a test travels elsewhere."""
    with time_machine.travel(dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC), tick=False):
        yield


@pytest.fixture
def coordinator(make_user, site_a):
    return make_user(role=Role.COORDINATOR, sites=[site_a], full_name="Casey Coordinator")


@pytest.fixture
def investigator(make_user, site_a):
    return make_user(role=Role.INVESTIGATOR, sites=[site_a], full_name="Ira Investigator")


@pytest.fixture
def consent_v1(investigator):
    return services.consent_document_add(
        actor=investigator,
        version="1.0",
        language="en",
        title="Participant information and consent",
        approved_on=dt.date(2026, 1, 10),
        effective_from=dt.date(2026, 2, 1),
        document=pdf_upload(),
    )


@pytest.fixture
def screen(coordinator, site_a):
    def make(**overrides):
        values = {
            "first_name": "Jane",
            "last_name": "Doe",
            "date_of_birth": dt.date(1970, 5, 17),
            "sex": "female",
            "screening_date": TODAY,
        }
        values.update(overrides)
        return services.screening_create(actor=coordinator, site=site_a, **values)

    return make


@pytest.fixture
def eligible_screening(screen, coordinator):
    screening = screen()
    services.eligibility_record(actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
    screening.refresh_from_db()
    return screening


@pytest.fixture
def consented(eligible_screening, coordinator, investigator, consent_v1):
    from django.utils import timezone

    services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    services.consent_record(
        actor=coordinator,
        screening=eligible_screening,
        document=consent_v1,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    return eligible_screening
