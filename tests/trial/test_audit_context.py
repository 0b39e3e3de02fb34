"""Web requests, Celery tasks and management commands all say who made a change and why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.factories import SiteFactory
from trial.audit import event_model_for
from trial.celery import app
from trial.models import Site
from trial.roles import Role

ROOT = Path(__file__).resolve().parents[2]
SiteEvent = event_model_for(Site)


@app.task(name="tests.rename_site")
def rename_site(site_id: int, name: str) -> None:
    Site.objects.filter(pk=site_id).update(name=name)


@pytest.mark.django_db
def test_celery_task_changes_name_the_task():
    site = SiteFactory(name="Before task")
    rename_site.apply(args=[site.pk, "After task"])
    event = SiteEvent.objects.filter(pgh_obj_id=site.pk, pgh_label="update").get()
    assert event.pgh_context["task"] == "tests.rename_site"
    assert event.pgh_context["actor"] == "task tests.rename_site"


@pytest.mark.django_db
def test_web_request_changes_name_the_user_url_and_site(make_user, signed_in, site_a):
    admin = make_user(role=Role.ADMINISTRATOR, sites=[site_a])
    client = signed_in(admin)
    client.post("/site/select/", {"site": site_a.pk})
    client.post(
        f"/sites/{site_a.pk}/edit/",
        {"name": "Renamed", "time_zone": "UTC", "is_active": "on", "reason": "new name"},
    )
    event = SiteEvent.objects.filter(pgh_obj_id=site_a.pk, pgh_label="update").get()
    assert event.pgh_context["user"] == admin.pk
    assert event.pgh_context["user_email"] == admin.email
    assert event.pgh_context["url"] == f"/sites/{site_a.pk}/edit/"
    assert event.pgh_context["site"] == site_a.code
    assert event.pgh_context["reason"] == "new name"


@pytest.mark.django_db(transaction=True)
def test_management_command_changes_name_the_command():
    db = connection.settings_dict
    result = subprocess.run(
        [sys.executable, "manage.py", "seed_demo"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    event = SiteEvent.objects.filter(pgh_label="insert", code="01").get()
    assert event.pgh_context["command"] == "seed_demo"
    assert event.pgh_context["actor"].startswith("command seed_demo")
    assert event.pgh_context["reason"] == "demo data (make run)"
