"""Report tasks: render a visit's report (on completion, on demand) and the minute tick that
refreshes reports of changed visits and voids signatures of changed records.

Rendering has time limits of its own (a stuck render must not hold a worker): soft 60 s, then the
worker kills it at 90 s. The task is idempotent (no new version unless the content changed)."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from participants.models import Visit
from trial.reports import services
from trial.reports.models import ReportTrigger

logger = logging.getLogger(__name__)

RENDER_SOFT_LIMIT_S = 60
RENDER_HARD_LIMIT_S = 90


@shared_task(
    name="reports.tasks.visit_report_generate",
    soft_time_limit=RENDER_SOFT_LIMIT_S,
    time_limit=RENDER_HARD_LIMIT_S,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
    acks_late=True,
)
def visit_report_generate(
    visit_id: int, trigger: str = ReportTrigger.VISIT_COMPLETED, user_id: int | None = None
):
    from trial.models import User

    actor = User.objects.get(pk=user_id) if user_id else None
    try:
        report = services.visit_report_generate(visit_id=visit_id, trigger=trigger, actor=actor)
    except Visit.DoesNotExist:
        return None
    except SoftTimeLimitExceeded:
        logger.error("Rendering the report of visit %s took longer than %ss", visit_id, RENDER_SOFT_LIMIT_S)
        raise
    return report.pk if report else None


@shared_task(name="reports.tasks.reports_refresh", soft_time_limit=50, time_limit=55)
def reports_refresh() -> dict[str, int]:
    """Every minute: void signatures whose records changed, then enqueue a report for every
    completed visit whose report no longer shows its data."""
    from trial.signatures.services import signatures_verify_changed

    voided = signatures_verify_changed()
    enqueued = 0
    for visit_id in services.visits_changed_since_report().values_list("pk", flat=True):
        visit_report_generate.delay(visit_id, str(ReportTrigger.DATA_CHANGED))
        enqueued += 1
    return {"voided": voided, "enqueued": enqueued}


def report_enqueue_on_commit(visit_id: int, trigger: str, user_id: int | None = None) -> None:
    """Ask for a report after the transaction commits. Best effort: if the broker is down the
    minute tick (`reports_refresh`) makes the report anyway, so the user's action never fails."""
    from django.db import transaction

    def send() -> None:
        try:
            visit_report_generate.apply_async(args=[visit_id, str(trigger), user_id], retry=False)
        except Exception:  # noqa: BLE001 - any broker failure; logged, the tick catches up
            logger.warning(
                "Could not enqueue the report of visit %s; the tick will make it.", visit_id, exc_info=True
            )

    transaction.on_commit(send)
