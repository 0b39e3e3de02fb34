"""/healthz: the state of the database, Redis and the Celery worker, as JSON for a load balancer."""

from __future__ import annotations

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from trial.celery import app as celery_app

WORKER_PING_TIMEOUT_S = 1.0


def database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError:
        return "unreachable"


def redis_state() -> str:
    try:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
        return "ok"
    except redis.RedisError:
        return "unreachable"


def worker_state() -> str:
    """'ok' when at least one Celery worker answers a broadcast ping through the broker."""
    try:
        replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - any broker failure means no worker can be reached
        return "unreachable"
    return "ok" if replies else "no worker"


@login_not_required
@never_cache
def healthz(request):
    database = database_state()
    cache = redis_state()
    worker = worker_state() if cache == "ok" else "unreachable"
    states = {"database": database, "redis": cache, "worker": worker}
    healthy = all(state == "ok" for state in states.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **states}, status=200 if healthy else 503)
