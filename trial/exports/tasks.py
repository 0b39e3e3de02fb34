"""Export task: takes the job id, runs the service; idempotent (a finished job is not redone)."""

from __future__ import annotations

from celery import shared_task

from trial.exports import services


@shared_task(
    name="exports.tasks.export_run",
    soft_time_limit=30 * 60,
    time_limit=35 * 60,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=3,
    acks_late=True,
)
def export_run(job_id: int) -> str | None:
    job = services.export_job_run(job_id=job_id)
    return job.status if job else None
