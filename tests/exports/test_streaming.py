"""Large exports stream: the database is read in batches and the file written as it goes, so the
queries an export makes do not grow with the participants (up to a batch: BATCH_SIZE records,
PARTICIPANTS_PER_BATCH participants; beyond, one more set of queries per batch, never per row).
Checked on the synthetic trial data (`trial.synthetic`) at 3 and at 8 participants."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from participants.models import Participant
from tests.trial.test_synthetic import demo  # noqa: F401 - the demo data fixture
from trial.exports.dictionary import FORMS
from trial.exports.models import ExportJob, ExportStatus
from trial.exports.records import form_queryset
from trial.exports.services import ExportParameters
from trial.exports.tasks import export_run
from trial.synthetic import synthetic_seed

KINDS = (
    ("csv_long", {}),
    ("csv_wide", {"form": "ULTRASOUNDMEASUREMENT"}),
    ("odm", {"include_audit": True}),
    ("fhir", {}),
    ("deidentified", {}),
    ("audit_trail", {}),
)


def forms_with_records() -> list[str]:
    participants = Participant.objects.all()
    return [spec.code for spec in FORMS if form_queryset(spec, participants).exists()]


def export_costs(actor) -> dict[str, tuple[int, int]]:
    """Per export kind: (queries of the run, rows written)."""
    costs = {}
    for kind, parameters in KINDS:
        # The job as export_request logs it, without its enqueue (this test runs it right here).
        checked = ExportParameters.from_json(kind, parameters)
        job = ExportJob.objects.create(kind=kind, parameters=checked.as_json(), requested_by=actor)
        with CaptureQueriesContext(connection) as captured:
            export_run.apply(args=[job.pk]).get()
        job.refresh_from_db()
        assert job.status == ExportStatus.DONE, (kind, job.error)
        costs[kind] = (len(captured), job.row_count)
    return costs


# Committed rows, as the worker sees them.
@pytest.mark.django_db(transaction=True)
def test_export_queries_are_the_same_for_3_and_8_participants(demo, data_manager, monkeypatch):  # noqa: F811
    # Progress is written once a second, so a slower run makes more UPDATEs: time, not rows.
    monkeypatch.setattr("trial.exports.progress.PROGRESS_INTERVAL_S", 3600.0)
    today = timezone.now().date()
    synthetic_seed(participants=3, seed=5, base_date=today)
    # The same forms hold records at both sizes: a form with none skips its provenance query,
    # which would look like growth.
    forms = forms_with_records()
    small = export_costs(data_manager)
    synthetic_seed(participants=5, seed=6, base_date=today)
    assert Participant.objects.count() == 1 + 8
    assert forms_with_records() == forms
    large = export_costs(data_manager)
    for kind, _parameters in KINDS:
        assert large[kind][1] > small[kind][1], kind  # more data was written...
    assert {k: q for k, (q, _rows) in large.items()} == {
        k: q for k, (q, _rows) in small.items()
    }  # same queries
