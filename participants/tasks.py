"""Celery tasks of the participants app: ids in, one service call, idempotent."""

from __future__ import annotations

from participants import safety
from trial.celery import app
from trial.tasks import MAIL_RETRY


@app.task(bind=True, **MAIL_RETRY)
def serious_adverse_event_notify(self, adverse_event_id: int) -> int:
    """Alert the site's investigators of serious adverse event `adverse_event_id` (sent once)."""
    return safety.serious_adverse_event_notify(adverse_event_id=adverse_event_id)
