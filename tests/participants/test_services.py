"""Screening, eligibility, consent and enrolment rules, enforced by the services and the database."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, InternalError, transaction
from django.utils import timezone

from participants import services
from participants.models import (
    ConsentWithdrawal,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
    WithdrawalScope,
)
from tests.factories import ELIGIBLE_ANSWERS, pdf_upload
from tests.participants.conftest import TODAY
from trial.audit import record_history
from trial.roles import Role

pytestmark = pytest.mark.django_db


def test_screening_numbers_are_per_site_and_never_reused(screen, coordinator, site_a):
    first, second = screen(), screen(first_name="John", sex="male")
    assert (first.screening_number, second.screening_number) == ("A1-S001", "A1-S002")
    with pytest.raises(ValidationError):
        screen(date_of_birth=dt.date(2030, 1, 1))  # the failed attempt may take a number ...
    assert screen().screening_number not in {first.screening_number, second.screening_number}


def test_failing_criterion_makes_a_screen_failure_with_the_reason(screen, coordinator):
    screening = screen(date_of_birth=dt.date(2008, 11, 3))  # 18 today: not over 18
    assessment = services.eligibility_record(
        actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS)
    )
    screening.refresh_from_db()
    assert assessment.status == "not_eligible"
    assert assessment.failing_criteria == ["IN2"]
    assert screening.outcome == ScreeningOutcome.SCREEN_FAILURE


def test_changing_saved_answers_needs_a_reason_and_voids_the_confirmation(
    eligible_screening, coordinator, investigator
):
    services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    with pytest.raises(ValidationError):
        services.eligibility_record(
            actor=coordinator, screening=eligible_screening, answers={"needs_symptomatic_relief": False}
        )
    assessment = services.eligibility_record(
        actor=coordinator,
        screening=eligible_screening,
        answers={"diagnosis_date": "2018"},
        reason="date of diagnosis from the clinic letter",
    )
    assert assessment.status == "eligible"
    assert assessment.confirmed_at is None and assessment.confirmed_by is None
    history = record_history(assessment)
    assert history[-1].reason == "date of diagnosis from the clinic letter"
    assert any(
        c.label == "date of diagnosis" and c.old == "2019-06" and c.new == "2018" for c in history[-1].changes
    )


def test_only_an_investigator_confirms_and_only_when_eligible(
    screen, eligible_screening, coordinator, investigator
):
    with pytest.raises(PermissionDenied):
        services.eligibility_confirm(actor=coordinator, screening=eligible_screening)
    incomplete = screen()
    with pytest.raises(ValidationError):
        services.eligibility_confirm(actor=investigator, screening=incomplete)
    assessment = services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    assert assessment.confirmed_by == investigator and assessment.confirmed_at is not None


def test_enrolment_refused_without_eligibility(screen, coordinator, consent_v1):
    screening = screen()
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=consent_v1,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    with pytest.raises(ValidationError, match="eligible"):
        services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)
    assert not Participant.objects.exists()


def test_enrolment_refused_without_investigator_confirmation(eligible_screening, coordinator, consent_v1):
    services.consent_record(
        actor=coordinator,
        screening=eligible_screening,
        document=consent_v1,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    with pytest.raises(ValidationError, match="confirm"):
        services.participant_enroll(actor=coordinator, screening=eligible_screening, enrolled_on=TODAY)


def test_enrolment_refused_without_consent(eligible_screening, coordinator, investigator):
    services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    with pytest.raises(ValidationError, match="consent"):
        services.participant_enroll(actor=coordinator, screening=eligible_screening, enrolled_on=TODAY)


def test_enrolment_assigns_site_study_ids(consented, coordinator, screen, investigator, consent_v1):
    participant = services.participant_enroll(
        actor=coordinator, screening=consented, enrolled_on=TODAY, email="Jane@Example.org"
    )
    assert participant.study_id == "A1-001"
    assert participant.email == "jane@example.org"
    consented.refresh_from_db()
    assert consented.outcome == ScreeningOutcome.ENROLLED
    with pytest.raises(ValidationError, match="already enrolled"):
        services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


@pytest.mark.parametrize("missing", ["confirmation", "consent"])
def test_the_database_refuses_an_enrolment_the_service_would_refuse(
    eligible_screening, coordinator, missing, investigator, consent_v1
):
    if missing == "consent":
        services.eligibility_confirm(actor=investigator, screening=eligible_screening)
    else:
        services.consent_record(
            actor=coordinator,
            screening=eligible_screening,
            document=consent_v1,
            consented_at=timezone.now(),
            participant_signature="Jane Doe",
            attestation=True,
            copy_given=True,
        )
    with pytest.raises((IntegrityError, InternalError), match="enrolment refused"):
        with transaction.atomic():
            Participant.objects.create(
                screening=eligible_screening,
                site=eligible_screening.site,
                study_id="A1-999",
                enrolled_on=TODAY,
                enrolled_by=coordinator,
            )


def test_consent_needs_attestation_and_a_version_in_force(eligible_screening, coordinator, investigator):
    future = services.consent_document_add(
        actor=investigator,
        version="2.0",
        language="en",
        title="Consent v2",
        approved_on=dt.date(2026, 11, 1),
        effective_from=dt.date(2026, 12, 1),
        document=pdf_upload(),
    )
    with pytest.raises(ValidationError, match="not in force"):
        services.consent_record(
            actor=coordinator,
            screening=eligible_screening,
            document=future,
            consented_at=timezone.now(),
            participant_signature="Jane Doe",
            attestation=True,
            copy_given=True,
        )
    with pytest.raises(ValidationError):
        services.consent_record(
            actor=coordinator,
            screening=eligible_screening,
            document=future,
            consented_at=timezone.now(),
            participant_signature="Jane Doe",
            attestation=False,
            copy_given=True,
        )


def test_consent_document_must_be_a_pdf(investigator):
    from django.core.files.uploadedfile import SimpleUploadedFile

    with pytest.raises(ValidationError, match="PDF"):
        services.consent_document_add(
            actor=investigator,
            version="9",
            language="en",
            title="Not a PDF",
            approved_on=dt.date(2026, 1, 1),
            effective_from=dt.date(2026, 1, 1),
            document=SimpleUploadedFile("consent.pdf", b"<html>nope</html>"),
        )


def test_new_version_flags_participants_for_reconsent_until_they_reconsent(
    consented, coordinator, investigator
):
    import time_machine

    participant = services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)
    assert not Participant.objects.needing_reconsent(on=TODAY).exists()
    v2 = services.consent_document_add(
        actor=investigator,
        version="2.0",
        language="en",
        title="Consent v2 (amendment 1)",
        approved_on=dt.date(2026, 11, 20),
        effective_from=dt.date(2026, 12, 1),
        document=pdf_upload(),
    )
    assert not Participant.objects.needing_reconsent(on=dt.date(2026, 11, 30)).exists()
    assert list(Participant.objects.needing_reconsent(on=dt.date(2026, 12, 1))) == [participant]
    with time_machine.travel(dt.datetime(2026, 12, 2, 15, 0, tzinfo=dt.UTC), tick=False):
        services.consent_record(
            actor=coordinator,
            screening=consented,
            document=v2,
            consented_at=timezone.now(),
            participant_signature="Jane Doe",
            attestation=True,
            copy_given=True,
        )
    assert not Participant.objects.needing_reconsent(on=dt.date(2026, 12, 2)).exists()


@pytest.mark.parametrize(
    ("scope", "contactable", "status"),
    [
        (WithdrawalScope.TREATMENT_ONLY, True, ParticipantStatus.ON_STUDY),
        (WithdrawalScope.NO_CONTACT, False, ParticipantStatus.WITHDRAWN),
        (WithdrawalScope.FULL, False, ParticipantStatus.WITHDRAWN),
    ],
)
def test_withdrawal_stops_scheduled_contact(consented, coordinator, scope, contactable, status):
    participant = services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)
    assert list(Participant.objects.contactable()) == [participant]
    services.consent_withdraw(
        actor=coordinator, screening=consented, withdrawn_on=TODAY, scope=scope, reason="moving abroad"
    )
    participant.refresh_from_db()
    assert Participant.objects.contactable().filter(pk=participant.pk).exists() is contactable
    assert participant.status == status
    assert ConsentWithdrawal.objects.filter(screening=consented, scope=scope).exists()


def test_withdrawn_consent_blocks_enrolment(consented, coordinator):
    services.consent_withdraw(
        actor=coordinator,
        screening=consented,
        withdrawn_on=TODAY,
        scope=WithdrawalScope.FULL,
        reason="changed mind",
    )
    with pytest.raises(ValidationError, match="no consent in force"):
        services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)


def test_site_isolation_in_the_services(screen, make_user, site_b):
    screening = screen()
    other_site_coordinator = make_user(role=Role.COORDINATOR, sites=[site_b])
    with pytest.raises(PermissionDenied):
        services.eligibility_record(
            actor=other_site_coordinator, screening=screening, answers={"diagnosis": "ssc"}
        )
    assert not Screening.objects.visible_to(other_site_coordinator).exists()


def test_early_termination_records_reason_and_date(consented, coordinator):
    participant = services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)
    ended = services.participant_end(
        actor=coordinator,
        participant=participant,
        ended_on=TODAY,
        end_reason="adverse_event",
        detail="skin ulcer",
    )
    assert (ended.status, ended.end_reason, ended.ended_on) == (
        ParticipantStatus.WITHDRAWN,
        "adverse_event",
        TODAY,
    )
    assert not Participant.objects.contactable().filter(pk=participant.pk).exists()


def test_audit_history_hides_identifying_values_from_monitors(screen, coordinator, make_user, site_a, client):
    from tests.conftest import sign_in

    screening = screen(first_name="Jane", last_name="Doe")
    from participants import services as s

    s.screening_update(
        actor=coordinator, screening=screening, data={"last_name": "Doe-Smith"}, reason="married name"
    )
    # A fixed name: a random one ("Janet ...") would contain the name this test looks for.
    monitor = make_user(role=Role.MONITOR, sites=[site_a], full_name="Morgan Monitor")
    page = sign_in(client, monitor).get(f"/audit/participants.screening/{screening.pk}/").content.decode()
    assert "Doe" not in page and "Jane" not in page and "1970-05-17" not in page
    assert "hidden" in page and "married name" in page
    page = sign_in(client, coordinator).get(f"/audit/participants.screening/{screening.pk}/").content.decode()
    assert "Doe-Smith" in page


def test_enrolment_plans_questionnaires_after_commit_through_the_task_by_name(
    consented, coordinator, celery_eager, django_capture_on_commit_callbacks
):
    """participants announces enrolment to pro_measures by task name (it never imports it); with
    eager tasks the announcement runs in this process, as `.delay()` would, not on the broker."""
    from pro_measures.models import Invitation

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        participant = services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)
        assert not Invitation.objects.filter(participant=participant).exists()  # not before commit
    assert len(callbacks) >= 1
    assert Invitation.objects.filter(participant=participant).exists()


def test_announcement_goes_to_the_broker_without_waiting_for_a_result(
    monkeypatch, django_capture_on_commit_callbacks
):
    """An announcement is fire-and-forget: it is published once, after commit, and neither
    subscribes the web process to the task's result channel (a Redis round trip on every save of
    clinical data) nor asks the worker to store a result that nobody reads."""
    from trial.celery import app

    published, result_subscriptions = [], []
    monkeypatch.setattr(
        app.backend, "on_task_call", lambda producer, task_id: result_subscriptions.append(task_id)
    )
    monkeypatch.setattr(
        app.amqp, "send_task_message", lambda producer, name, message, **options: published.append(message)
    )
    with django_capture_on_commit_callbacks(execute=True):
        services._announce("reports.tasks.visit_report_generate", 42, "changed")
        assert published == []  # not before commit

    assert [(m.headers["task"], m.headers["ignore_result"]) for m in published] == [
        ("reports.tasks.visit_report_generate", True)
    ]
    assert result_subscriptions == []


def test_the_first_announcement_of_a_process_imports_the_tasks_it_names(
    monkeypatch, consented, coordinator, celery_eager, django_capture_on_commit_callbacks
):
    """Processes do not import every app's tasks when they start (a management command would load
    WeasyPrint for nothing): the first announcement imports them, so eager mode and the task's own
    options still apply, as they did when every process imported them at start-up."""
    import sys

    import pro_measures
    import pro_measures.tasks
    from pro_measures.models import Invitation
    from trial.celery import app

    registered = dict(app.tasks)
    # This process as if it had never imported pro_measures.tasks; all restored afterwards.
    monkeypatch.delitem(sys.modules, "pro_measures.tasks")
    monkeypatch.setattr(pro_measures, "tasks", pro_measures.tasks)
    for name in [name for name in app.tasks if name.startswith("pro_measures.tasks.")]:
        del app.tasks[name]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            participant = services.participant_enroll(
                actor=coordinator, screening=consented, enrolled_on=TODAY
            )

        assert Invitation.objects.filter(participant=participant).exists()
    finally:
        app.tasks.clear()
        app.tasks.update(registered)
