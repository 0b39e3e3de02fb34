"""The periodic automatic data checks (scheduled in settings.CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from trial.data_management import services


@shared_task(
    name="data_management.tasks.auto_queries_raise",
    soft_time_limit=240,
    time_limit=300,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
)
def auto_queries_raise() -> int:
    """Idempotent: a finding already queried is not queried again."""
    return services.auto_queries_raise()
