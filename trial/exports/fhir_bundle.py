"""FHIR R4 Bundle (type collection) of the QuestionnaireResponses, one entry per stored response,
written entry by entry so memory stays flat. Each resource is built and validated by
`pro_measures.fhir` (fhir.resources R4B); the subject is the study id only."""

from __future__ import annotations

import json
from typing import BinaryIO

from django.db import models
from django.utils import timezone

from pro_measures.fhir import as_json, questionnaire_response_resource
from pro_measures.models import Response
from trial.exports.records import BATCH_SIZE


def responses_for(participants: models.QuerySet) -> models.QuerySet:
    return (
        Response.objects.filter(invitation__participant__in=participants.values("pk"))
        .select_related("invitation__participant", "invitation__visit")
        .order_by("pk")
    )


def write_fhir_bundle(out: BinaryIO, *, participants: models.QuerySet, progress=None, **_kw) -> int:
    head = {"resourceType": "Bundle", "type": "collection", "timestamp": timezone.now().isoformat()}
    out.write(json.dumps(head)[:-1].encode() + b', "entry": [')
    count = 0
    for response in responses_for(participants).iterator(chunk_size=BATCH_SIZE):
        resource = questionnaire_response_resource(response)
        entry = (
            b'{"fullUrl": "urn:uuid:'
            + _urn(response).encode()
            + b'", "resource": '
            + as_json(resource).encode()
        )
        out.write((b", " if count else b"") + entry + b"}")
        count += 1
        if progress:
            progress(count)
    out.write(b"]}")
    return count


def _urn(response: Response) -> str:
    import uuid

    # Stable per response, so two exports of the same data name an entry the same way.
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"questionnaire-response/{response.pk}"))
