"""CheckConstraints evaluated in Python (trial.check_constraints) give the database's verdicts."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import CheckConstraint, Q
from django.test.utils import CaptureQueriesContext

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from trial.check_constraints import check_constraint_holds

pytestmark = pytest.mark.django_db

DIMENSIONS = [
    None,
    Decimal("-1"),
    Decimal("0"),
    Decimal("0.1"),
    Decimal("12.5"),
    Decimal("200"),
    Decimal("200.1"),
]
CHOICES = {
    UltrasoundMeasurement: {
        "length_mm": DIMENSIONS,
        "width_mm": DIMENSIONS,
        "depth_mm": DIMENSIONS,
        "depth_not_measurable_reason": ["", "shadowing"],
        "source": ["manual", "caliper", "sr"],
        "dicom_file_id": [None, 1],
        "frame_number": [None, 0, 3],
    },
    Injection: {
        "volume_ml": [None, Decimal("-0.01"), Decimal("0"), Decimal("0.01"), Decimal("1.50")],
        "immediate_pain": [None, 0, 10, 11],
        "ultrasound_guided": [True, False],
    },
    Lesion: {
        "anatomical_site": ["hand_digit", "forearm", "other"],
        "digit": ["", "thumb", "index"],
        "phalanx": ["", "middle", "distal"],
        "site_detail": ["", "elbow"],
        "first_seen_on": [dt.date(2026, 1, 10)],
        "resolved_on": [None, dt.date(2026, 1, 9), dt.date(2026, 1, 10), dt.date(2026, 2, 1)],
    },
}


def _instances(model, count: int, seed: int):
    rng = random.Random(seed)
    for _ in range(count):
        yield model(**{name: rng.choice(values) for name, values in CHOICES[model].items()})


def _database_verdict(instance, constraint) -> bool:
    """What PostgreSQL says (Django's own check: the condition, NULL counting as passed)."""
    against = instance._get_field_expression_map(meta=type(instance)._meta)
    return Q(constraint.condition).check(against, using="default")


@pytest.mark.parametrize("model", [UltrasoundMeasurement, Injection, Lesion])
def test_python_verdicts_equal_the_databases(model):
    checks = [c for c in model._meta.constraints if isinstance(c, CheckConstraint)]
    verdicts = set()
    for instance in _instances(model, 150, seed=model.__name__.__len__()):
        for constraint in checks:
            in_python = check_constraint_holds(instance, constraint) is not False
            assert in_python == _database_verdict(instance, constraint), (constraint.name, vars(instance))
            verdicts.add(in_python)
    assert verdicts == {True, False}  # both kinds of answer were compared


@pytest.mark.parametrize("model", [UltrasoundMeasurement, Injection, Lesion])
def test_full_clean_errors_are_djangos(model):
    """Same messages, codes and skipped fields as Model.validate_constraints, which asks the database."""
    rng = random.Random(7)
    names = list(CHOICES[model])
    for instance in _instances(model, 60, seed=11):
        exclude = set(rng.sample(names, rng.randint(0, 2)))
        ours = theirs = None
        try:
            instance.validate_constraints(exclude=exclude)
        except ValidationError as exc:
            ours = exc.message_dict
        try:
            models.Model.validate_constraints(instance, exclude=exclude)
        except ValidationError as exc:
            theirs = exc.message_dict
        assert ours == theirs, (exclude, vars(instance))


def test_checking_a_measurement_asks_the_database_nothing():
    measurement = UltrasoundMeasurement(
        length_mm=Decimal("250"), width_mm=Decimal("5"), depth_mm=None, depth_not_measurable_reason=""
    )
    with CaptureQueriesContext(connection) as queries, pytest.raises(ValidationError) as refused:
        measurement.validate_constraints(exclude={"lesion", "visit"})
    assert len(queries) == 0
    assert len(refused.value.messages) == 2  # implausible length, neither depth nor reason
