"""A malformed setting stops start-up with a message naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "k" * 64,
    "ALLOWED_HOSTS": "edc.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/sts_edc",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "TIME_ZONE": "Europe/London",
    # Read no .env file: only the variables given here count.
    "ENV_FILE": "",
}


def run_python(code: str, **overrides: str) -> subprocess.CompletedProcess:
    """Start Django in a fresh process whose environment holds only GOOD_ENV and `overrides`."""
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": str(ROOT)}
    env.update(GOOD_ENV)
    env.update(overrides)
    env["DJANGO_SETTINGS_MODULE"] = "trial.settings"
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; " + code,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def start_up(**overrides: str) -> subprocess.CompletedProcess:
    return run_python("print(s.TIME_ZONE)", **overrides)


def test_good_environment_starts():
    result = start_up()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Europe/London"


@pytest.mark.parametrize(
    ("name", "value", "hint"),
    [
        ("DEBUG", "maybe", "true or false"),
        ("TIME_ZONE", "Mars/Olympus_Mons", "IANA time zone"),
        ("DATABASE_URL", "mysql://root@localhost/edc", "postgres://"),
        ("REDIS_URL", "localhost:6379", "redis://"),
        ("CONN_MAX_AGE", "sixty", "whole number"),
        ("SESSION_IDLE_TIMEOUT_MINUTES", "-5", "whole number"),
        ("EMAIL_URL", "carrier-pigeon://coop", "e-mail URL"),
        ("SITE_URL", "edc.example.org", "http(s) URL"),
    ],
)
def test_malformed_value_stops_start_up_naming_the_variable(name, value, hint):
    result = start_up(**{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{name}={value!r}" in result.stderr
    assert hint in result.stderr


def test_production_refuses_a_short_secret_key():
    result = start_up(SECRET_KEY="short")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "at least 50 characters" in result.stderr


def test_secure_defaults_without_any_opt_out():
    result = run_python(
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE, s.DATABASES['default']['CONN_MAX_AGE'] > 0)"
    )
    assert result.stdout.split() == ["False", "True", "True", "True", "True", "Lax", "True"], result.stderr
