"""Celery tasks of the questionnaires app. All periodic schedules are in settings.CELERY_BEAT_SCHEDULE."""

from __future__ import annotations

from pro_measures import invitations, reminders
from trial.celery import app


@app.task(bind=True, soft_time_limit=50, time_limit=60)
def reminders_tick(self) -> list[str]:
    """Every minute: count the due reminders and enqueue one `reminders_send_batch` per batch of
    them, on the queue this tick came from (sends nothing itself). Returns the batch tasks' ids."""
    delivery = self.request.delivery_info or {}
    return reminders.reminders_dispatch_due(queue=delivery.get("routing_key"))


@app.task(soft_time_limit=50, time_limit=60)
def reminders_send_batch(lost: bool = True) -> int:
    """Claim and send one batch of due reminders (exactly once, safe with duplicates and several
    workers: a task that finds nothing left returns 0). Returns the number sent."""
    return reminders.reminders_send_batch(lost=lost)


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
