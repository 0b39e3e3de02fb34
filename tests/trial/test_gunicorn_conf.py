"""gunicorn's master (trial.gunicorn_conf) prepares what its workers share before forking them."""

from __future__ import annotations

import gc
import sys
from types import SimpleNamespace

import pytest

from trial import gunicorn_conf


@pytest.fixture
def master():
    """The master's side of `when_ready`, run in this process: its freeze is undone afterwards."""
    messages: list[str] = []
    server = SimpleNamespace(log=SimpleNamespace(info=lambda message, *args: messages.append(message % args)))
    threshold = gc.get_threshold()
    yield server, messages
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_master_imports_the_site_and_freezes_it_out_of_the_workers_collections(master):
    """Every view, task and the broker's transport are imported once, before the fork, without
    touching the database (no django_db mark: a query fails this test; a connection opened here
    would be shared by every worker); what is imported then stays out of later collections."""
    from trial.celery import app

    server, messages = master
    gunicorn_conf.when_ready(server)

    assert "reports.tasks.visit_report_generate" in app.tasks
    assert "pro_measures.tasks.reminders_cancel_for_participant" in app.tasks
    assert "kombu.transport.redis" in sys.modules
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == gunicorn_conf.GC_YOUNG_THRESHOLD > 700  # inherited by the workers
    assert any("objects frozen" in message for message in messages)
