"""/healthz tells a load balancer whether this instance can serve: database, Redis and a worker."""

from __future__ import annotations

import socket
import time

import pytest

from trial.celery import app as celery_app

pytestmark = pytest.mark.django_db


@pytest.fixture
def unreachable_redis(settings):
    """Point the cache and the Celery broker at a local port that refuses connections.

    The port is bound but not listening, so nothing else can take it during the test and every
    connection is refused at once.
    """
    closed = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    closed.bind(("127.0.0.1", 0))
    url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    broker_url = celery_app.conf.broker_url
    settings.REDIS_URL = url
    celery_app.conf.broker_url = url
    try:
        yield url
    finally:
        celery_app.conf.broker_url = broker_url
        closed.close()


def test_health_is_degraded_when_no_worker_answers(client):
    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "database": "ok", "redis": "ok", "worker": "no worker"}


@pytest.mark.worker
def test_health_is_ok_with_a_running_worker(client, celery_worker_process):
    response = client.get("/healthz")

    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok", "worker": "ok"}
    assert response.status_code == 200


@pytest.mark.worker
def test_health_is_degraded_again_once_the_worker_stops(client, celery_worker_process):
    assert client.get("/healthz").status_code == 200
    celery_worker_process.process.terminate()
    celery_worker_process.process.wait(timeout=10)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker"] == "no worker"


def test_unreachable_redis_is_reported_quickly(client, unreachable_redis):
    started = time.monotonic()
    response = client.get("/healthz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert response.json() == {
        "status": "degraded",
        "database": "ok",
        "redis": "unreachable",
        "worker": "unreachable",
    }
    # A load balancer's check typically times out after 2-5 s; the probe must answer well within.
    assert elapsed < 3


def test_health_needs_no_login_and_is_never_cached(client):
    response = client.get("/healthz")

    assert response.status_code in (200, 503)  # not a redirect to the login page
    assert "no-cache" in response["Cache-Control"]


def test_web_readiness_ignores_the_workers(client):
    """A load balancer asks /healthz/web: stopped workers must not take the pages out of rotation."""
    response = client.get("/healthz/web")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "redis": "ok"}


def test_web_readiness_fails_without_redis(client, unreachable_redis):
    response = client.get("/healthz/web")

    assert response.status_code == 503
    assert response.json()["redis"] == "unreachable"
