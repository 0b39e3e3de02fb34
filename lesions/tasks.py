"""Celery tasks of the lesions app: processing an uploaded ultrasound DICOM file.

The task takes the row's id and calls the service; the service is idempotent (a processed file is
left alone), so a retry or a redelivery does no harm. The untrusted bytes are parsed in the
sandbox's child process, whose wall-clock limit is well inside the task's time limits.
"""

from __future__ import annotations

from lesions.dicom import services
from trial.celery import app

# Storage briefly unavailable: try again (2 s, 4 s ... up to 5 minutes).
DICOM_RETRY = {
    "autoretry_for": (OSError,),
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
    "soft_time_limit": 150,
    "time_limit": 180,
}


@app.task(bind=True, **DICOM_RETRY)
def dicom_file_process(self, dicom_file_id: int) -> str:
    """De-identify, read and preview upload `dicom_file_id`; returns its status."""
    return services.dicom_file_process(dicom_file_id=dicom_file_id).status


@app.task(ignore_result=True)
def dicom_files_requeue_stuck() -> int:
    """Periodic (beat): enqueue processing again for uploads whose task was lost, so no upload
    stays "pending" for ever after a worker crash or a broker flush. Returns how many."""
    stuck = services.dicom_files_stuck()
    for dicom_file_id in stuck:
        dicom_file_process.delay(dicom_file_id)
    return len(stuck)
