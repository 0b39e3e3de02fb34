"""A real Celery worker process for tests where the broker is the point (`@pytest.mark.worker`).

The worker runs `celery -A trial worker` with the test settings against the test Redis and the
test database, on a queue of its own so it never takes another run's tasks. Tasks it runs see
only committed rows: use it with `transactional_db`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings

from trial.celery import app

PROJECT_DIR = Path(__file__).resolve().parent.parent
CELERY = Path(sys.executable).with_name("celery")
STARTUP_TIMEOUT_S = 30
SHUTDOWN_TIMEOUT_S = 10


@dataclass(frozen=True)
class RunningWorker:
    hostname: str  # the node name that answers control commands, e.g. "test-1a2b@tests"
    queue: str  # send tasks here with `task.apply_async(queue=worker.queue)`
    process: subprocess.Popen


def database_url(database: dict) -> str:
    """The DATABASE_URL of the database the test run uses (pytest-django's test database)."""
    user = quote(database.get("USER") or "", safe="")
    password = quote(database.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = database.get("HOST") or "127.0.0.1"
    port = database.get("PORT") or "5432"
    return f"postgres://{credentials}{host}:{port}/{quote(database['NAME'], safe='')}"


def answers_ping(hostname: str, timeout: float = 0.5, celery_app=app) -> bool:
    return bool(celery_app.control.ping(destination=[hostname], timeout=timeout, limit=1))


@contextmanager
def worker_started(
    log_path: Path, *, queue: str | None = None, env: dict | None = None, celery_app=app
) -> Iterator[RunningWorker]:
    """Start a Celery worker with the test settings (plus `env`) on `queue` (a new one by
    default), wait until it answers a ping through `celery_app`, and stop it on exit."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    hostname = f"{name}@tests"
    queue = queue or name
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_URL": settings.REDIS_URL,
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "PYTHONPATH": str(PROJECT_DIR),
        **(env or {}),
    }
    command = [
        str(CELERY),
        "-A",
        "trial",
        "worker",
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-Q",
        queue,
        "--hostname",
        hostname,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "WARNING",
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=PROJECT_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not answers_ping(hostname, celery_app=celery_app):
            if process.poll() is not None:
                pytest.fail(f"Celery worker exited with {process.returncode}:\n{log_path.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Celery worker did not answer a ping in {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}"
                )
        yield RunningWorker(hostname=hostname, queue=queue, process=process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def celery_worker_process(django_db_setup, tmp_path) -> Iterator[RunningWorker]:
    """Start a Celery worker, wait until it answers a ping, and stop it after the test."""
    with worker_started(tmp_path / "celery-worker.log") as worker:
        yield worker
