"""A completed baseline visit with measurements, an injection, a pregnancy test and an adverse
event whose description is hostile HTML: site A, 3 November 2026."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from lesions.services import LesionRow, visit_lesions_save
from participants import safety, visits
from tests.lesions.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    injection,
    investigator,
    lesions,
    measurement,
    participant,
    screen,
)

HOSTILE_DESCRIPTION = (
    'Redness <img src="file:///etc/passwd"> and <link rel="stylesheet" href="http://169.254.169.254/x.css">'
)


@pytest.fixture
def baseline(participant):  # noqa: F811
    return participant.visits.get(code="W0")


@pytest.fixture
def visit_data(participant, lesions, baseline, coordinator):  # noqa: F811
    safety.pregnancy_test_record(
        actor=coordinator,
        participant=participant,
        test_type="urine_hcg",
        test_date=TODAY,
        result="negative",
        visit=baseline,
    )
    l1, _l2, l3 = lesions
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[
            LesionRow(l1, measurement=measurement("12.0", "8.0", "5.0"), injection=injection("0.40")),
            LesionRow(l3, measurement=measurement("20.0", "10.0", "6.0"), injection=injection("0.60")),
        ],
    )
    safety.adverse_event_record(
        actor=coordinator,
        participant=participant,
        values={
            "term_code": "injection_site_pain",
            "ctcae_version": "5.0",
            "grade": 1,
            "related_to_sts": "probable",
            "related_to_procedure": "probable",
            "onset_date": "2026-11-03",
            "outcome": "recovering",
            "action_taken": "none",
            "description": HOSTILE_DESCRIPTION,
            "reported_at_visit": baseline,
        },
    )
    safety.ae_review_record(actor=coordinator, visit=baseline, new_events=True)
    return baseline


@pytest.fixture
def completed_visit(visit_data, coordinator, django_capture_on_commit_callbacks):  # noqa: F811
    with django_capture_on_commit_callbacks(execute=False):
        return visits.visit_complete(actor=coordinator, visit=visit_data, visit_date=TODAY)


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def report_text(report) -> str:
    with report.pdf.open("rb") as handle:
        return pdf_text(handle.read())


__all__ = ["dt"]
