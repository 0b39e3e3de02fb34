"""Signing a person's eligibility and a participant's end of study: the same ceremony as visits,
bound to their own records, voided by a later edit, listed in the queue; the refused-attempt log is
append-only."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext

from participants import services as participant_services
from participants import visits as visit_services
from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, ELIGIBLE_ANSWERS
from tests.participants.conftest import TODAY
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    participant,
    screen,
)
from tests.signatures.test_signing import current_code
from trial.audit import event_model_for
from trial.roles import Role
from trial.signatures import services
from trial.signatures.models import Signature, SigningFailure

pytestmark = pytest.mark.django_db


def sign(investigator, subject, password=DEFAULT_PASSWORD):  # noqa: F811
    """Sign as a service caller without a session: the code is always asked for."""
    (signature,) = services.subjects_sign(
        actor=investigator,
        subjects=[subject],
        meaning="reviewed_approved",
        password=password,
        otp_token=current_code(investigator),
    )
    return signature


def a_minute_later():
    """A TOTP code is accepted once: a second signature in a test comes a minute later."""
    return time_machine.travel(dt.datetime(2026, 11, 3, 15, 1, tzinfo=dt.UTC), tick=False)


@pytest.fixture
def ended(participant, coordinator):  # noqa: F811
    return participant_services.participant_end(
        actor=coordinator,
        participant=participant,
        ended_on=TODAY,
        end_reason="adverse_event",
        detail="grade 3 rash",
    )


# --- Eligibility -------------------------------------------------------------------------------


def test_signing_eligibility_is_the_investigators_confirmation(eligible_screening, investigator):  # noqa: F811
    assert not eligible_screening.eligibility.is_confirmed
    signature = sign(investigator, eligible_screening)
    eligible_screening.eligibility.refresh_from_db()
    assessment = eligible_screening.eligibility
    assert assessment.is_confirmed and assessment.confirmed_by == investigator
    assert (signature.kind, signature.screening, signature.visit, signature.participant) == (
        "eligibility",
        eligible_screening,
        None,
        None,
    )
    signed = signature.content["eligibility"]
    assert signed["calcinosis_modality"] == "xray" and signed["status"] == "eligible"
    assert signed["confirmed_by_id"] == investigator.pk
    assert signature.content["screening"]["date_of_birth"] == "1970-05-17"
    assert "first_name" not in signature.content["screening"]
    assert services.signature_verify(signature).valid
    assert not services.eligibility_to_sign(investigator).queryset.exists()


def test_an_incomplete_checklist_cannot_be_signed(screen, investigator):  # noqa: F811
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="not complete and met"):
        sign(investigator, screen())
    assert not Signature.objects.exists()


def test_a_changed_answer_voids_the_eligibility_signature_and_queues_it_again(
    eligible_screening,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
):
    signature = sign(investigator, eligible_screening)
    participant_services.eligibility_record(
        actor=coordinator,
        screening=eligible_screening,
        answers={"calcinosis_modality": "ultrasound"},
        reason="the imaging was an ultrasound",
    )
    assert services.signatures_verify_changed() == 1
    signature.refresh_from_db()
    assert signature.status == "void" and "changed after signing" in signature.void_reason
    void_event = event_model_for(Signature).objects.get(pgh_obj_id=signature.pk, pgh_label="update")
    assert void_event.status == "void"
    queued = services.eligibility_to_sign(investigator).queryset.get(pk=eligible_screening.pk)
    assert queued.was_signed
    with a_minute_later():
        again = sign(investigator, eligible_screening)
    assert again.content["eligibility"]["calcinosis_modality"] == "ultrasound"


def test_a_correction_of_the_name_keeps_the_eligibility_signature(
    eligible_screening,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
):
    signature = sign(investigator, eligible_screening)
    participant_services.screening_update(
        actor=coordinator, screening=eligible_screening, data={"last_name": "Doe-Smith"}, reason="typo"
    )
    assert services.signatures_verify_changed() == 0
    signature.refresh_from_db()
    assert signature.status == "valid"


# --- End of study ------------------------------------------------------------------------------


def test_signing_an_end_of_study_binds_status_date_reason_and_withdrawals(ended, investigator):  # noqa: F811
    signature = sign(investigator, ended)
    assert (signature.kind, signature.participant) == ("end_of_study", ended)
    signed = signature.content["participant"]
    assert (signed["status"], signed["ended_on"], signed["end_reason"]) == (
        "withdrawn",
        "2026-11-03",
        "adverse_event",
    )
    assert "email" not in signed
    assert signature.content["withdrawals"] == []
    assert services.signature_verify(signature).valid


def test_a_participant_on_study_has_no_end_of_study_to_sign(participant, investigator):  # noqa: F811
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="still on study"):
        sign(investigator, participant)
    assert participant not in services.ends_of_study_to_sign(investigator).queryset


def test_a_later_withdrawal_voids_the_end_of_study_signature(ended, investigator, coordinator):  # noqa: F811
    signature = sign(investigator, ended)
    participant_services.consent_withdraw(
        actor=coordinator, screening=ended.screening, withdrawn_on=TODAY, scope="full", reason="moved away"
    )
    assert services.signatures_verify_changed() == 1
    signature.refresh_from_db()
    assert signature.status == "void"
    assert services.ends_of_study_to_sign(investigator).queryset.get(pk=ended.pk).was_signed


# --- Database rules ----------------------------------------------------------------------------


def test_the_database_wants_exactly_the_subject_of_the_kind(eligible_screening, investigator, participant):  # noqa: F811
    signature = sign(investigator, eligible_screening)
    # A signature is never re-pointed to another subject or kind.
    with pytest.raises(InternalError, match="Cannot update"), transaction.atomic():
        Signature.objects.filter(pk=signature.pk).update(kind="end_of_study", participant=participant)
    base = {
        "signer": investigator,
        "printed_name": "X",
        "signer_email": "x@example.org",
        "meaning": "reviewed",
        "signed_at": dt.datetime(2026, 11, 3, tzinfo=dt.UTC),
        "content_hash": "0" * 64,
        "content": {},
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        Signature.objects.create(
            kind="end_of_study", participant=participant, screening=eligible_screening, **base
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        Signature.objects.create(kind="eligibility", **base)
    with pytest.raises(IntegrityError), transaction.atomic():  # a second valid signature
        Signature.objects.create(kind="eligibility", screening=eligible_screening, **base)


# --- Refused attempts: linked to the subject, append-only, audited ------------------------------


@pytest.fixture
def refused_attempt(eligible_screening, investigator):  # noqa: F811
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="password is not correct"):
        sign(investigator, eligible_screening, password="not my password")
    return SigningFailure.objects.get()


def test_a_refused_attempt_names_what_was_being_signed_and_is_audited(
    refused_attempt,
    eligible_screening,  # noqa: F811
    investigator,  # noqa: F811
):
    assert (
        refused_attempt.kind,
        refused_attempt.screening,
        refused_attempt.visit,
        refused_attempt.reason,
    ) == (
        "eligibility",
        eligible_screening,
        None,
        "wrong password",
    )
    event = event_model_for(SigningFailure).objects.get(pgh_obj_id=refused_attempt.pk)
    assert event.pgh_label == "insert" and event.pgh_context["user"] == investigator.pk


def attempts_to_rewrite(failure: SigningFailure):
    """Every way to change or remove a logged attempt: ORM update and delete, raw SQL."""
    yield lambda: SigningFailure.objects.filter(pk=failure.pk).update(reason="nothing happened")
    yield lambda: SigningFailure.objects.filter(pk=failure.pk).delete()
    yield lambda: failure.delete()
    for statement in (
        "UPDATE signatures_signingfailure SET reason = 'x' WHERE id = %s",
        "DELETE FROM signatures_signingfailure WHERE id = %s",
    ):

        def raw(statement=statement):
            with connection.cursor() as cursor:
                cursor.execute(statement, [failure.pk])

        yield raw


def assert_log_unchanged(failure: SigningFailure) -> None:
    failure.refresh_from_db()
    assert failure.reason == "wrong password"
    assert event_model_for(SigningFailure).objects.filter(pgh_obj_id=failure.pk).count() == 1


def test_the_site_cannot_change_or_delete_a_refused_attempt(refused_attempt):
    """The runtime role the site connects as may only read and insert the log."""
    for attempt in attempts_to_rewrite(refused_attempt):
        with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
            attempt()
    assert_log_unchanged(refused_attempt)


@pytest.mark.as_owner
def test_even_the_database_owner_cannot_change_or_delete_a_refused_attempt(refused_attempt):
    """Behind the missing privileges, a trigger refuses UPDATE and DELETE for every role."""
    for attempt in attempts_to_rewrite(refused_attempt):
        with pytest.raises(InternalError, match="Cannot update or delete rows"), transaction.atomic():
            attempt()
    assert_log_unchanged(refused_attempt)


# --- Pages -------------------------------------------------------------------------------------


def test_eligibility_is_confirmed_and_signed_on_one_page_and_shown_on_the_screening_page(
    client,
    eligible_screening,  # noqa: F811
    investigator,  # noqa: F811
):
    sign_in(client, investigator)
    screening_page = client.get(eligible_screening.get_absolute_url()).content.decode()
    url = f"/signatures/eligibility/{eligible_screening.pk}/"
    assert f'href="{url}"' in screening_page and "Confirm and sign eligibility" in screening_page
    page = client.get(url).content.decode()
    assert "Every criterion is met." in page and "Not signed yet." in page
    response = client.post(url, {"meaning": "reviewed_approved", "password": "wrong"})
    assert response.status_code == 400 and "password is not correct" in response.content.decode()
    assert not Signature.objects.exists()
    response = client.post(url, {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD})
    assert response.status_code == 302
    signature = Signature.objects.get()
    eligible_screening.eligibility.refresh_from_db()
    assert eligible_screening.eligibility.confirmed_by == investigator
    screening_page = client.get(eligible_screening.get_absolute_url()).content.decode()
    assert "Ira Investigator — Reviewed and approved" in screening_page
    assert "2026-11-03 15:00 UTC" in screening_page and signature.content_hash[:16] in screening_page
    assert "Confirm and sign eligibility" not in screening_page


def test_the_participant_page_shows_both_signatures_and_a_void_one_as_void(
    client,
    ended,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
):
    eligibility = sign(investigator, ended.screening)
    with a_minute_later():
        end = sign(investigator, ended)
    sign_in(client, investigator)
    page = client.get(ended.get_absolute_url()).content.decode()
    assert eligibility.content_hash[:16] in page and end.content_hash[:16] in page
    participant_services.consent_withdraw(
        actor=coordinator, screening=ended.screening, withdrawn_on=TODAY, scope="full", reason="moved away"
    )
    # No tick ran: the page voids the changed signature before it is shown.
    page = client.get(ended.get_absolute_url()).content.decode()
    assert eligibility.content_hash[:16] in page and end.content_hash[:16] not in page
    assert "the signed records changed after signing" in page
    end.refresh_from_db()
    assert end.status == "void"
    assert "Review and sign the end of study" in page


# --- The queue ---------------------------------------------------------------------------------


def enrol(screening, *, coordinator, investigator, consent_v1):  # noqa: F811
    """The screened person found eligible, confirmed, consented and enrolled today."""
    from django.utils import timezone

    participant_services.eligibility_record(
        actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS)
    )
    participant_services.eligibility_confirm(actor=investigator, screening=screening)
    participant_services.consent_record(
        actor=coordinator,
        screening=screening,
        document=consent_v1,
        consented_at=timezone.now(),
        participant_signature=screening.first_name,
        attestation=True,
        copy_given=True,
    )
    return participant_services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=TODAY)


def enrol_complete_and_end(n: int, *, screen, coordinator, investigator, consent_v1):  # noqa: F811
    """n participants, each with a completed baseline visit, an eligibility and an end of study
    waiting for a signature."""
    for i in range(n):
        enrolled = enrol(
            screen(first_name=f"P{i}"),
            coordinator=coordinator,
            investigator=investigator,
            consent_v1=consent_v1,
        )
        visit_services.visit_complete(
            actor=coordinator, visit=enrolled.visits.get(code="W0"), visit_date=TODAY
        )
        participant_services.participant_end(
            actor=coordinator, participant=enrolled, ended_on=TODAY, end_reason="completed"
        )


def test_the_queue_lists_every_kind_and_its_query_count_does_not_grow(
    client,
    screen,  # noqa: F811
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    consent_v1,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    def queries_of_queue(expected: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/signatures/queue/")
        page = response.content.decode()
        assert page.count('data-testid="queue-row"') == expected
        assert page.count('data-testid="queue-eligibility-row"') == expected
        assert page.count('data-testid="queue-end-row"') == expected
        return len(captured.captured_queries)

    people = {
        "screen": screen,
        "coordinator": coordinator,
        "investigator": investigator,
        "consent_v1": consent_v1,
    }
    sign_in(client, investigator)
    with django_capture_on_commit_callbacks(execute=False):
        enrol_complete_and_end(2, **people)
    small = queries_of_queue(2)
    with django_capture_on_commit_callbacks(execute=False):
        enrol_complete_and_end(8, **people)
    assert queries_of_queue(10) == small


def test_the_queue_lists_visits_oldest_first_then_by_study_id_then_visit_order(
    client,
    site_a,
    site_b,
    make_user,
    consent_v1,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    both_coordinator = make_user(role=Role.COORDINATOR, sites=[site_a, site_b])
    both_investigator = make_user(role=Role.INVESTIGATOR, sites=[site_a, site_b])
    people = {"coordinator": both_coordinator, "investigator": both_investigator, "consent_v1": consent_v1}

    def enrolled_at(site):
        screening = participant_services.screening_create(
            actor=both_coordinator,
            site=site,
            first_name=f"At {site.code}",
            last_name="Doe",
            date_of_birth=dt.date(1970, 5, 17),
            sex="female",
            screening_date=TODAY,
        )
        return enrol(screening, **people)

    with django_capture_on_commit_callbacks(execute=False):
        # Enrolled first (the lower ids), but B1-001 comes after A1-001 on the same day.
        at_b, at_a = enrolled_at(site_b), enrolled_at(site_a)
        visit_services.visit_complete(
            actor=both_coordinator, visit=at_b.visits.get(code="W0"), visit_date=TODAY
        )
        with time_machine.travel(dt.datetime(2026, 11, 5, 15, 0, tzinfo=dt.UTC), tick=False):
            # Two days later: B1-001's next visit (planned before A1-001's, the lower id) early.
            later = TODAY + dt.timedelta(days=2)
            for participant, code in ((at_b, "W4"), (at_a, "W0")):
                visit = participant.visits.get(code=code)
                visit_services.visit_complete(actor=both_coordinator, visit=visit, visit_date=later)
    sign_in(client, both_investigator)
    response = client.get("/signatures/queue/")
    assert [str(visit) for visit in response.context["visits"]] == ["B1-001 W0", "A1-001 W0", "B1-001 W4"]


def test_the_queue_signs_several_kinds_at_once(
    client,
    ended,  # noqa: F811
    investigator,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    sign_in(client, investigator)
    page = client.get("/signatures/queue/").content.decode()
    assert "Sign the eligibility of" in page and "Sign the end of study of A1-001" in page
    response = client.post(
        "/signatures/queue/",
        {
            "screenings": [ended.screening_id],
            "participants": [ended.pk],
            "meaning": "reviewed",
            "password": DEFAULT_PASSWORD,
        },
    )
    assert response.status_code == 302
    assert sorted(Signature.objects.values_list("kind", flat=True)) == ["eligibility", "end_of_study"]
    assert "Nothing is waiting for your signature" in client.get("/signatures/queue/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_edit_outside_the_signed_content_is_looked_at_once(consented, investigator, coordinator):  # noqa: F811
    """Enrolment changes the screening's outcome (not signed content) after the eligibility was
    signed: the next check confirms the hash once; later checks (the queue, the tick) skip it, so
    their cost does not grow with every participant enrolled. Committed transactions: the audit
    clock is each transaction's time."""
    signature = sign(investigator, consented)
    participant_services.participant_enroll(actor=coordinator, screening=consented, enrolled_on=TODAY)
    candidates = services.changed_since_signing(Signature.objects.all())
    assert list(candidates) == [signature]
    assert services.signatures_verify_changed() == 0
    assert not services.changed_since_signing(Signature.objects.all()).exists()
    assert not event_model_for(Signature).objects.filter(pgh_label="update").exists()  # bookkeeping only
    # A later edit of signed content makes it a candidate again, and void.
    participant_services.screening_update(
        actor=coordinator, screening=consented, data={"date_of_birth": dt.date(1970, 5, 18)}, reason="typo"
    )
    assert services.signatures_verify_changed() == 1
