"""Adverse events: a serious one e-mails the site's investigators once, after commit."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from participants import safety
from participants.models import AdverseEvent
from participants.tasks import serious_adverse_event_notify
from trial.roles import Role

pytestmark = pytest.mark.django_db


def sae(**extra):
    values = {
        "term_code": "injection_site_infection",
        "ctcae_version": "5.0",
        "grade": 3,
        "serious": True,
        "seriousness_criteria": ["hospitalisation"],
        "related_to_sts": "possible",
        "related_to_procedure": "probable",
        "expected": True,
        "onset_date": "2026-11-02",
        "outcome": "recovering",
        "action_taken": "delayed",
    }
    values.update(extra)
    return values


def test_serious_event_emails_the_sites_investigators_once_after_commit(
    participant,
    coordinator,
    investigator,
    make_user,
    site_b,
    django_capture_on_commit_callbacks,
    celery_eager,
):
    make_user(role=Role.INVESTIGATOR, sites=[site_b], email="other-site@example.org")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        event = safety.adverse_event_record(actor=coordinator, participant=participant, values=sae())
    assert mail.outbox == []  # nothing before the commit
    for callback in callbacks:
        callback()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [investigator.email]
    assert participant.study_id in message.subject
    assert "Jane" not in message.body and "Doe" not in message.body  # no direct identifiers
    # A retry or redelivery sends nothing more.
    assert serious_adverse_event_notify.apply(args=[event.pk]).get() == 0
    event.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        safety.adverse_event_update(
            actor=coordinator,
            event=event,
            values={"outcome": "recovered", "resolution_date": "2026-11-03"},
            reason="follow-up call",
            expected_version=event.row_version,
        )
    assert len(mail.outbox) == 1


def test_non_serious_event_sends_no_email(
    participant, coordinator, investigator, django_capture_on_commit_callbacks, celery_eager
):
    with django_capture_on_commit_callbacks(execute=True):
        safety.adverse_event_record(
            actor=coordinator,
            participant=participant,
            values=sae(serious=False, seriousness_criteria=[], grade=1),
        )
    assert mail.outbox == []


def test_upgrade_to_serious_alerts_then(
    participant, coordinator, investigator, django_capture_on_commit_callbacks, celery_eager
):
    with django_capture_on_commit_callbacks(execute=True):
        event = safety.adverse_event_record(
            actor=coordinator,
            participant=participant,
            values=sae(serious=False, seriousness_criteria=[], grade=2),
        )
        safety.adverse_event_update(
            actor=coordinator,
            event=event,
            values={"serious": True, "seriousness_criteria": ["hospitalisation"]},
            reason="admitted overnight",
            expected_version=event.row_version,
        )
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"serious": True, "seriousness_criteria": []},
        {"serious": False, "seriousness_criteria": ["death"]},
        {"grade": 5, "outcome": "recovered"},
        {"grade": 6},
        {"term_code": "other", "term_text": ""},
        {"onset_date": "2026-13"},
    ],
)
def test_inconsistent_adverse_event_is_refused(participant, coordinator, bad):
    with pytest.raises(ValidationError):
        safety.adverse_event_record(actor=coordinator, participant=participant, values=sae(**bad))
    assert not AdverseEvent.objects.exists()
