"""The dashboard's body is cached until the data it shows change (trial.dashboard_cache_key)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from participants.models import AdverseEvent
from tests.conftest import sign_in
from tests.trial.test_synthetic import demo  # noqa: F401 - the demo data fixture
from trial.models import User
from trial.synthetic import synthetic_seed

pytestmark = pytest.mark.django_db


def grade_4_count(html: str) -> int:
    return int(
        re.search(r'data-row="grade-4"><th scope="row">Grade 4</th><td class="text-end">(\d+)<', html)[1]
    )


def test_an_edit_shows_on_the_next_dashboard_and_an_unchanged_one_is_served_from_the_cache(demo):  # noqa: F811
    synthetic_seed(participants=12, seed=31, base_date=timezone.now().date())
    investigator = sign_in(Client(), User.objects.get(email__startswith="investigator"))
    url = reverse("dashboard")
    first = investigator.get(url).content.decode()
    with CaptureQueriesContext(connection) as cached:
        again = investigator.get(url).content.decode()
    assert grade_4_count(again) == grade_4_count(first)
    assert not any('"lesions_ultrasoundmeasurement"."length_mm"' in q["sql"] for q in cached.captured_queries)

    event = AdverseEvent.objects.exclude(grade=4).first()
    event.grade = 4
    event.save()
    assert grade_4_count(investigator.get(url).content.decode()) == grade_4_count(first) + 1
