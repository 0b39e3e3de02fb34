"""`seed_demo --participants N --seed S`: synthetic data at scale (issue #9), small N here."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.db.models import Sum

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from participants.demo import participants_demo_seed
from participants.models import AdverseEvent, Participant, Screening, ScreeningOutcome, Visit, VisitStatus
from pro_measures.models import Invitation, InvitationStatus, Reminder, ReminderState, Response, Score
from trial.audit import event_model_for
from trial.data_management.models import Query
from trial.demo import demo_seed
from trial.protocol import PROTOCOL, Form
from trial.signatures.models import Signature
from trial.signatures.services import signature_verify
from trial.synthetic import AUDIT_ACTOR, synthetic_seed

pytestmark = pytest.mark.django_db

BASE = dt.date(2026, 6, 15)


@pytest.fixture
def demo(db):
    demo_seed()
    participants_demo_seed()


def digest() -> str:
    """SHA-256 of the synthetic data's values (not of ids or database time stamps)."""
    parts = [
        Screening.objects.order_by("screening_number").values_list(
            "screening_number", "first_name", "last_name", "date_of_birth", "sex", "screening_date", "outcome"
        ),
        Participant.objects.order_by("study_id").values_list("study_id", "enrolled_on", "status", "ended_on"),
        Visit.objects.order_by("participant__study_id", "sequence").values_list(
            "participant__study_id", "code", "status", "visit_date", "window_opens", "window_closes"
        ),
        Lesion.objects.order_by("participant__study_id", "label").values_list(
            "participant__study_id", "label", "anatomical_site", "digit", "phalanx", "first_seen_on"
        ),
        UltrasoundMeasurement.objects.order_by(
            "visit__participant__study_id", "visit__sequence", "lesion__label"
        ).values_list("lesion__label", "visit__code", "length_mm", "width_mm", "depth_mm", "doppler_signal"),
        Injection.objects.order_by(
            "visit__participant__study_id", "visit__sequence", "lesion__label"
        ).values_list(
            "lesion__label", "visit__code", "concentration_mg_per_ml", "volume_ml", "immediate_pain"
        ),
        Invitation.objects.order_by(
            "participant__study_id", "visit__sequence", "instrument_code"
        ).values_list("instrument_code", "status", "opens_at", "completed_at"),
        Response.objects.order_by(
            "invitation__participant__study_id", "invitation__visit__sequence", "instrument_code"
        ).values_list("answers", "submitted_at"),
        Score.objects.order_by(
            "response__invitation__participant__study_id", "response__invitation__visit__sequence", "name"
        ).values_list("name", "value"),
        AdverseEvent.objects.order_by(
            "participant__study_id", "onset_date", "term_code", "grade"
        ).values_list("participant__study_id", "term_code", "grade", "serious", "onset_date"),
        Query.objects.order_by("participant__study_id", "raised_at").values_list(
            "field_name", "state", "raised_at"
        ),
        Reminder.objects.order_by("due_at", "kind", "sequence").values_list(
            "kind", "sequence", "due_at", "state"
        ),
    ]
    return hashlib.sha256(repr([list(p) for p in parts]).encode()).hexdigest()


def seeded_digest(seed: int, participants: int = 6) -> str:
    """Seed inside a savepoint, take the digest, roll back: each run starts from the same state."""
    with transaction.atomic():
        synthetic_seed(participants=participants, seed=seed, base_date=BASE)
        value = digest()
        transaction.set_rollback(True)
    return value


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(demo):
    first = seeded_digest(11)
    assert seeded_digest(11) == first
    assert seeded_digest(12) != first


def test_each_participant_has_every_scheduled_visit_lesions_and_forms_per_the_protocol(demo):
    synthetic_seed(participants=10, seed=3, base_date=BASE)
    synthetic = Participant.objects.exclude(study_id="01-001")
    assert synthetic.count() == 10
    assert Screening.objects.filter(outcome=ScreeningOutcome.ENROLLED).count() == 11  # + the demo person
    planned_codes = [v.code for v in PROTOCOL.planned_visits]
    for participant in synthetic:
        assert list(participant.visits.order_by("sequence").values_list("code", flat=True)) == planned_codes
        assert 1 <= participant.lesions.count() <= 6
        assert participant.screening.eligibility.is_confirmed
    completed = Visit.objects.filter(participant__in=synthetic, status=VisitStatus.COMPLETED)
    assert completed.exists()
    for visit in completed.select_related("participant"):
        lesions = visit.participant.lesions.count()
        assert visit.measurements.count() == lesions
        expects_injections = Form.INJECTIONS in visit.definition.forms
        assert visit.injections.count() == (lesions if expects_injections else 0)
        assert hasattr(visit, "ae_review")
        instruments = set(visit.invitations.values_list("instrument_code", flat=True))
        assert instruments in (set(), set(visit.definition.instruments))
    # Every completed questionnaire has its answers and the instrument's scores.
    for invitation in Invitation.objects.filter(status=InvitationStatus.COMPLETED).select_related("response"):
        names = {s.name for s in invitation.response.scores.all()}
        assert names == {s.name for s in invitation.instrument.scores}
    # Some of everything the issue lists.
    assert Visit.objects.filter(participant__in=synthetic, status=VisitStatus.PLANNED).exists()
    assert AdverseEvent.objects.exists() and Query.objects.exists() and Signature.objects.exists()
    assert Reminder.objects.filter(state=ReminderState.PENDING).exists()
    assert Screening.objects.filter(outcome=ScreeningOutcome.SCREEN_FAILURE).count() > 1
    assert set(Participant.objects.values_list("site__code", flat=True)) == {"01", "02", "03"}


def test_injections_stay_within_the_protocol_dose_limits(demo):
    synthetic_seed(participants=10, seed=5, base_date=BASE)
    dosing = PROTOCOL.dosing
    assert Injection.objects.count() > 20
    assert not Injection.objects.filter(volume_ml__gt=dosing.max_volume_per_lesion_ml).exists()
    assert set(Injection.objects.values_list("concentration_mg_per_ml", flat=True)) <= set(
        dosing.concentrations_mg_per_ml
    )
    per_session = Injection.objects.values("visit").annotate(total=Sum("dose_mg"))
    assert max(row["total"] for row in per_session) <= dosing.max_total_dose_per_session_mg


def test_seeded_rows_have_audit_events_that_name_the_seeder(demo):
    models = (Screening, Participant, Visit, Lesion, UltrasoundMeasurement, Injection, Response, Score, Query)
    before = {model: set(model.objects.values_list("pk", flat=True)) for model in models}
    synthetic_seed(participants=5, seed=9, base_date=BASE)
    for model in models:
        seeded_ids = set(model.objects.values_list("pk", flat=True)) - before[model]
        assert seeded_ids, model
        events = event_model_for(model).objects.filter(pgh_obj_id__in=seeded_ids, pgh_label="insert")
        by_seeder = events.filter(pgh_context__actor=AUDIT_ACTOR, pgh_context__command="seed_demo")
        assert set(by_seeder.values_list("pgh_obj_id", flat=True)) == seeded_ids, model
        assert (
            by_seeder.first()
            .pgh_context["reason"]
            .startswith("synthetic data (seed_demo --participants 5 --seed 9")
        )


def test_seeded_signatures_verify_against_the_signed_records(demo):
    synthetic_seed(participants=10, seed=4, base_date=BASE)
    signatures = list(Signature.objects.all())
    assert signatures
    assert all(signature_verify(s).valid for s in signatures)


def test_pending_reminders_option_adds_rows_none_due_at_the_base_date(demo):
    synthetic_seed(participants=5, seed=2, base_date=BASE)
    before = Reminder.objects.filter(state=ReminderState.PENDING).count()
    synthetic_seed(participants=5, seed=21, base_date=BASE, pending_reminders=300)
    extra = Reminder.objects.filter(state=ReminderState.PENDING, sequence__gte=100)
    assert extra.count() == 300
    assert Reminder.objects.filter(state=ReminderState.PENDING).count() >= before + 300
    base_moment = dt.datetime.combine(BASE + dt.timedelta(days=1), dt.time(0), tzinfo=dt.UTC)
    assert not extra.filter(due_at__lt=base_moment).exists()
    # Spread over the invitations that are still open, a few rows each.
    assert max(Counter(extra.values_list("invitation_id", flat=True)).values()) <= 300


def test_seed_demo_without_participants_is_unchanged_and_with_them_reports_counts():
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert Participant.objects.count() == 1 and Screening.objects.count() == 2
    out = io.StringIO()
    call_command("seed_demo", participants=3, seed=8, base_date=BASE, stdout=out)
    assert Participant.objects.count() == 4
    assert "participants.Participant" in out.getvalue() and "Synthetic data (seed 8" in out.getvalue()
    with pytest.raises(CommandError, match="already has synthetic data of seed 8"):
        call_command("seed_demo", participants=3, seed=8, base_date=BASE, stdout=io.StringIO())
    assert Participant.objects.count() == 4
    # `make demo` runs again: with --if-absent the same seed adds nothing and is no error.
    out = io.StringIO()
    call_command("seed_demo", participants=3, seed=8, base_date=BASE, if_absent=True, stdout=out)
    assert "Synthetic data of seed 8 is already here: nothing added." in out.getvalue()
    assert Participant.objects.count() == 4
