"""/healthz: the state of the database, Redis and the Celery worker, as JSON for a load balancer.

Every probe has a short timeout and no retries, so an unreachable service shows as "unreachable"
within about a second instead of holding a web worker (and the load balancer's check) hostage.
"""

from __future__ import annotations

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

from trial.celery import app as celery_app

# Seconds. A worker busy with a long task still answers a ping (its control thread is separate).
WORKER_PING_TIMEOUT_S = 1.0
CONNECT_TIMEOUT_S = 1.0


def database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError:
        return "unreachable"


def redis_state() -> str:
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
    )
    try:
        client.ping()
        return "ok"
    except redis.RedisError:
        return "unreachable"
    finally:
        client.close()


def worker_state() -> str:
    """'ok' when at least one Celery worker answers a broadcast ping through the broker.

    The broker URL is read from the Celery app at call time. Celery's own connection pool retries
    an unreachable broker for several seconds, so the probe opens its own connection with one
    quick attempt and hands it to the ping.
    """
    try:
        with celery_app.connection_for_write(
            transport_options={
                "socket_connect_timeout": CONNECT_TIMEOUT_S,
                "socket_timeout": CONNECT_TIMEOUT_S,
            }
        ) as broker:
            broker.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0, timeout=CONNECT_TIMEOUT_S
            )
            replies = celery_app.control.ping(timeout=WORKER_PING_TIMEOUT_S, connection=broker)
    except Exception:  # noqa: BLE001 - any broker failure means no worker can be reached
        return "unreachable"
    return "ok" if replies else "no worker"


def _answer(states: dict[str, str]) -> JsonResponse:
    healthy = all(state == "ok" for state in states.values())
    return JsonResponse({"status": "ok" if healthy else "degraded", **states}, status=200 if healthy else 503)


@login_not_required
@never_cache
def healthz(request):
    """The whole installation: database, Redis and at least one Celery worker."""
    return _answer({"database": database_state(), "redis": redis_state(), "worker": worker_state()})


@login_not_required
@never_cache
def healthz_web(request):
    """What a load balancer asks of one web container: can it serve pages (database and Redis)?
    Workers being down must not take the web pages out of rotation."""
    return _answer({"database": database_state(), "redis": redis_state()})
