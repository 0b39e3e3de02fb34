"""The canonical content of a visit: the field values of every record entered for it, as stable JSON.

Two things are bound to it by SHA-256:
- an investigator's signature of the visit (`trial.signatures`): the signed records' values;
- a report version (`trial.reports`): everything the PDF shows except the time it was generated.

Stable means: keys sorted, no whitespace, decimals as their stored text ("10.0", never 10.0 as a
float), dates and times in ISO 8601 (UTC), lists in primary-key order. The same records give the
same bytes on any machine and any day; one changed value gives another hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from lesions.models import DicomFile, Injection, UltrasoundMeasurement
from participants.models import AdverseEvent, AEReview, PregnancyTest, Visit
from pro_measures.models import Response, Score

# Bookkeeping that changes on a save without changing what was recorded (the SAE alert task
# stamps investigators_notified_at after the fact).
NOT_CONTENT = frozenset({"row_version", "investigators_notified_at"})


def canonical_json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def record_values(obj: models.Model) -> dict[str, Any]:
    """Every stored field value of one record (generated columns included), by column name."""
    values = {"model": obj._meta.label, "pk": obj.pk}
    for field in obj._meta.concrete_fields:
        if field.name not in NOT_CONTENT:
            values[field.attname] = field.value_from_object(obj)
    # Round-trip through JSON so that values read back from the database and values still in
    # memory after a save (Decimal('10') vs Decimal('10.0')) compare as the database stores them.
    return json.loads(canonical_json(values))


def visit_records(visit: Visit) -> dict[str, Any]:
    """The records of one visit, as signed: the visit itself, ultrasound measurements, STS
    injections, pregnancy tests, adverse events reported at it, its AE review, questionnaire
    responses and scores of its invitations. Queries: seven, whatever the number of rows."""
    visit = Visit.objects.get(pk=visit.pk)  # the stored values, not an edited copy in memory

    def rows(queryset) -> list[dict[str, Any]]:
        return [record_values(obj) for obj in queryset.order_by("pk")]

    review = AEReview.objects.filter(visit=visit).first()
    return {
        "visit": record_values(visit),
        "measurements": rows(UltrasoundMeasurement.objects.filter(visit=visit)),
        "injections": rows(Injection.objects.filter(visit=visit)),
        "pregnancy_tests": rows(PregnancyTest.objects.filter(visit=visit)),
        "adverse_events": rows(AdverseEvent.objects.filter(reported_at_visit=visit)),
        "ae_review": record_values(review) if review else None,
        "responses": rows(Response.objects.filter(invitation__visit=visit)),
        "scores": rows(Score.objects.filter(response__invitation__visit=visit)),
    }


def visit_content_hash(visit: Visit) -> str:
    """SHA-256 (hex) of the canonical JSON of the visit's records."""
    return sha256_of(visit_records(visit))


def record_event_sources() -> list[tuple[type[models.Model], str]]:
    """Each signed record's model with the lookup from its audit event table to the visit's id.
    A visit whose records have an event newer than its signature may have changed."""
    return [
        (Visit, "pgh_obj_id"),
        (UltrasoundMeasurement, "visit_id"),
        (Injection, "visit_id"),
        (DicomFile, "visit_id"),
        (PregnancyTest, "visit_id"),
        (AdverseEvent, "reported_at_visit_id"),
        (AEReview, "visit_id"),
        (Response, "invitation__visit_id"),
        (Score, "response__invitation__visit_id"),
    ]
