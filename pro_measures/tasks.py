"""Celery tasks of the questionnaires app. All periodic schedules are in settings.CELERY_BEAT_SCHEDULE."""

from __future__ import annotations

from pro_measures import invitations, reminders
from trial.celery import app


@app.task(soft_time_limit=50, time_limit=60)
def reminders_tick() -> int:
    """Send every due reminder once (runs every minute; safe with several workers)."""
    return reminders.reminders_send_due()


@app.task(soft_time_limit=600, time_limit=660)
def reminders_plan() -> dict:
    """Hourly: invitations for visit windows opening soon, visit reminders, digests, and
    re-timing of unsent reminders after a rule change."""
    return {
        "invitations": invitations.invitations_plan_due(),
        "visit_reminders": reminders.visit_reminders_plan(),
        "digests": reminders.digests_plan(),
        "retimed": reminders.reminders_retime(),
    }


@app.task(bind=True, max_retries=5, retry_backoff=True, soft_time_limit=60, time_limit=90)
def invitations_plan_for_participant(self, participant_id: int) -> int:
    """Plan a newly enrolled participant's first questionnaires right away (idempotent)."""
    return invitations.invitations_plan_for_participant(participant_id=participant_id)


@app.task(soft_time_limit=60, time_limit=90)
def reminders_cancel_for_participant(participant_id: int, reason: str) -> int:
    """A withdrawal or end of study: cancel every pending e-mail to the participant at once."""
    return reminders.reminders_cancel_for_participant(participant_id=participant_id, reason=reason)
