"""The signature queue verifies signatures only when something they cover changed (issue #9): an
unchanged queue costs the same few queries however many signatures there are, and a change of
signed data, even one committed by a transaction that was still writing during the last check,
shows the signature void on the next load (21 CFR 11.70)."""

from __future__ import annotations

import contextlib
import threading

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from lesions.models import UltrasoundMeasurement
from participants import visits as visit_services
from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD
from tests.reports.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    measurement,
    participant,
    screen,
    visit_data,
)
from tests.signatures.test_signing import correct_measurement, current_code, sign
from tests.signatures.test_subjects import a_minute_later
from trial.models import Site
from trial.signatures import services
from trial.signatures.models import Signature
from trial.signatures.watermark import watermark_read

pytestmark = pytest.mark.django_db

VOID_BADGE = "Signature void: data changed"


def signed_unscheduled_visits(n, *, participant, coordinator, investigator):  # noqa: F811
    """`n` more completed visits, signed in one act a minute later (a TOTP code is used once)."""
    extra = []
    for _ in range(n):
        visit = visit_services.visit_add_unscheduled(
            actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
        )
        extra.append(visit_services.visit_complete(actor=coordinator, visit=visit, visit_date=TODAY))
    with a_minute_later():
        services.visits_sign(
            actor=investigator,
            visits=extra,
            meaning="reviewed_approved",
            password=DEFAULT_PASSWORD,
            otp_token=current_code(investigator),
        )


def queue_load(client) -> tuple[str, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/signatures/queue/")
    assert response.status_code == 200
    return response.content.decode(), [q["sql"] for q in captured.captured_queries]


def verification_ran(statements: list[str]) -> bool:
    """The candidates query of `changed_since_signing`: audit events newer than the signature."""
    return any("pgh_created_at" in sql for sql in statements)


def test_an_unchanged_queue_does_not_verify_again_and_costs_the_same_at_two_sizes(
    client,
    completed_visit,  # noqa: F811
    participant,  # noqa: F811
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    sign(investigator, completed_visit)
    sign_in(client, investigator)
    counts = []
    for more in (0, 3):
        if more:
            with django_capture_on_commit_callbacks(execute=False):
                signed_unscheduled_visits(
                    more, participant=participant, coordinator=coordinator, investigator=investigator
                )
        # The first load after a change verifies; its watermark is kept once it commits.
        with django_capture_on_commit_callbacks(execute=True):
            _page, first = queue_load(client)
        assert verification_ran(first)
        _page, unchanged = queue_load(client)
        assert not verification_ran(unchanged)
        counts.append(len(unchanged))
    assert Signature.objects.valid().count() == 4
    assert counts[0] == counts[1]


def test_a_change_of_signed_data_shows_the_signature_void_on_the_next_load(
    client,
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    lesions,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    (signature,) = sign(investigator, completed_visit)
    sign_in(client, investigator)
    with django_capture_on_commit_callbacks(execute=True):
        page, _statements = queue_load(client)
    assert 'data-testid="queue-row"' not in page
    with django_capture_on_commit_callbacks(execute=False):
        correct_measurement(completed_visit, lesions[0], coordinator)
    page, statements = queue_load(client)
    assert verification_ran(statements)
    assert page.count('data-testid="queue-row"') == 1 and VOID_BADGE in page
    signature.refresh_from_db()
    assert signature.status == "void"


def test_a_verification_rolled_back_is_not_trusted(
    client,
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    sign(investigator, completed_visit)
    sign_in(client, investigator)
    # The check's transaction never commits (the test's is rolled back): no watermark is kept.
    with django_capture_on_commit_callbacks(execute=False):
        queue_load(client)
    _page, statements = queue_load(client)
    assert verification_ran(statements)


@contextlib.contextmanager
def save_held_open(save):
    """Run `save` in a transaction of another connection and keep it open (uncommitted) for the
    block; it commits when the block ends. Yields the transaction's id (xid8, as text). Waits are
    long: the shared test machine can take tens of seconds for a first page."""
    written, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []
    xid: list[str] = []

    def saves():
        try:
            with transaction.atomic():
                save()
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_current_xact_id()::text")
                    xid.append(cursor.fetchone()[0])
                written.set()
                assert release.wait(300)
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            failures.append(error)
            written.set()
        finally:
            connection.close()

    writer = threading.Thread(target=saves)
    writer.start()
    try:
        assert written.wait(300) and not failures, failures
        yield xid[0]
    finally:
        release.set()
        writer.join(300)
    assert not failures, failures


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_after_the_check_by_a_transaction_open_during_it_is_found(
    client,
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    lesions,  # noqa: F811
):
    """A coordinator's save is still open while the investigator loads the queue: the check cannot
    see it, so the signature shows valid then. Once the save commits, the next load finds it."""
    (signature,) = sign(investigator, completed_visit)
    sign_in(client, investigator)
    with save_held_open(lambda: correct_measurement(completed_visit, lesions[0], coordinator)) as xid:
        page, _statements = queue_load(client)  # autocommit: the watermark is kept at once
        assert VOID_BADGE not in page
        during, _ = watermark_read(sites=Site.objects.visible_to(investigator), since=None)
        assert xid in during.in_progress
    _after, committed_since = watermark_read(sites=Site.objects.visible_to(investigator), since=during)
    assert committed_since
    page, statements = queue_load(client)
    assert verification_ran(statements) and VOID_BADGE in page
    signature.refresh_from_db()
    assert signature.status == "void"


@pytest.mark.django_db(transaction=True)
def test_a_signature_checked_while_a_save_was_open_is_checked_again_after_it_commits(
    completed_visit,  # noqa: F811
    investigator,  # noqa: F811
    coordinator,  # noqa: F811
    lesions,  # noqa: F811
):
    """The check that finds the signature intact (the open save not visible yet) must not mark it
    as known current past that save's start: pghistory stamps the save's events with the time its
    transaction began, before the check."""
    (signature,) = sign(investigator, completed_visit)
    # An audit event outside the signed content (row_version): the signature is a candidate.
    UltrasoundMeasurement.objects.filter(visit=completed_visit).update(row_version=F("row_version") + 1)
    with save_held_open(lambda: correct_measurement(completed_visit, lesions[0], coordinator)):
        assert services.signatures_verify_changed() == 0
        signature.refresh_from_db()
        assert signature.status == "valid"
    assert services.signatures_verify_changed() == 1
    signature.refresh_from_db()
    assert signature.status == "void"
