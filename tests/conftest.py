"""Shared fixtures: sites, users per role, and clients signed in with two factors."""

from __future__ import annotations

import os

import pytest
from django_otp import DEVICE_ID_SESSION_KEY

from tests.factories import SiteFactory, UserFactory
from trial.roles import Role

# A real Celery worker process (`celery_worker_process`) for tests marked `worker`.
pytest_plugins = ["tests.worker"]


# Test code runs as the least-privilege runtime role the site connects as in production
# (trial/database_roles.py), so a code path that needs more than the role grants fails here.
# `@pytest.mark.as_owner` (or EDC_TEST_AS_OWNER=1) runs as the database owner instead: for tests of
# the database's own defences (triggers) behind the role's missing privileges.
RUNTIME_ROLE = f"edc_app_test_{os.getpid()}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database, plus the runtime role with its grants (committed before
    any test's transaction begins; roles belong to the whole server, so it is dropped after)."""
    from django.db import connection

    from trial.database_roles import runtime_role_grant

    with django_db_blocker.unblock():
        runtime_role_grant(role=RUNTIME_ROLE)
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f'DROP OWNED BY "{RUNTIME_ROLE}"')
        cursor.execute(f'DROP ROLE "{RUNTIME_ROLE}"')


@pytest.fixture(autouse=True)
def _as_runtime_role(request):
    uses_db = {"db", "transactional_db", "django_db_reset_sequences", "live_server"} & set(request.fixturenames)
    as_owner = os.environ.get("EDC_TEST_AS_OWNER") or request.node.get_closest_marker("as_owner")
    if as_owner or not (uses_db or request.node.get_closest_marker("django_db")):
        yield
        return
    from django.db import connection

    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    with connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{RUNTIME_ROLE}"')
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


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
