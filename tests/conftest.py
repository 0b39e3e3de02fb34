"""Shared fixtures: sites, users per role, and clients signed in with two factors."""

from __future__ import annotations

import pytest
from django_otp import DEVICE_ID_SESSION_KEY

from tests.factories import SiteFactory, UserFactory
from trial.roles import Role

# A real Celery worker process (`celery_worker_process`) for tests marked `worker`.
pytest_plugins = ["tests.worker"]


@pytest.fixture
def site_a(db):
    return SiteFactory(code="A1", name="Site A")


@pytest.fixture
def site_b(db):
    return SiteFactory(code="B1", name="Site B")


@pytest.fixture
def make_user(db):
    def make(role: Role | None = None, sites=(), **kwargs):
        return UserFactory(role=role, sites=list(sites), **kwargs)

    return make


def sign_in(client, user):
    """Sign `user` in as if they had passed both factors."""
    client.force_login(user)
    device = user.totpdevice_set.filter(confirmed=True).first()
    if device is not None:
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


@pytest.fixture
def signed_in(client):
    return lambda user: sign_in(client, user)


@pytest.fixture
def celery_eager():
    """Tasks enqueued during the test run at once, in the test's process (Celery's own
    `.apply()`), with exceptions raised: for tests of what a task does, without a worker. Use it
    with `django_capture_on_commit_callbacks(execute=True)`, which runs the `on_commit` enqueue."""
    from trial.celery import app

    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = saved
