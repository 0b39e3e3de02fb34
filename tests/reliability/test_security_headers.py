"""Deployment checks (issue #10, item 8): the headers a browser enforces, on the pages people use.

- `manage.py check --deploy` under production settings: 0 warnings (the same command `make test`
  runs before pytest), and the production values of the transport settings.
- A Content-Security-Policy without 'unsafe-inline' or 'unsafe-eval' on staff pages, error pages and
  the patient questionnaire pages; no template carries an inline script, inline style or
  `javascript:` URL that this policy would refuse (the browser tests fail on any refusal as well:
  tests/browser/conftest.py).
- HSTS on HTTPS, frames denied twice (X-Frame-Options DENY and frame-ancestors 'none'), nosniff,
  and `Referrer-Policy: no-referrer` on every page a questionnaire link opens.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from pro_measures.invitations import link_create
from tests.conftest import sign_in
from tests.pro_measures.answers import invite
from tests.pro_measures.conftest import (  # noqa: F401 - shared fixtures
    TODAY,
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    participant,
    screen,
)

ROOT = Path(__file__).resolve().parents[2]
# The production-like environment of the Makefile's `check --deploy` (no real site uses it).
PRODUCTION_ENV = {
    "ENV_FILE": "",
    "DEBUG": "false",
    "ALLOWED_HOSTS": "edc.example.org",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_COOKIES": "true",
    "SECRET_KEY": "deploy-check-" + "k" * 60,
    "SITE_URL": "https://edc.example.org",
    "DICOM_UID_KEY": "deploy-check-" + "u" * 40,
}
STRICT_POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "object-src": {"'none'"},
    "base-uri": {"'none'"},
    "frame-ancestors": {"'none'"},
    "form-action": {"'self'"},
}
UNSAFE = ("'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*")


def production_run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(PRODUCTION_ENV, DJANGO_SETTINGS_MODULE="trial.settings")
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def policy(response) -> dict[str, set[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.request['PATH_INFO']}"
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = set(values)
    return directives


def assert_strict(response) -> None:
    directives = policy(response)
    for name, values in STRICT_POLICY.items():
        assert directives.get(name) == values, (name, directives.get(name))
    assert directives["img-src"] <= {"'self'", "data:"}
    loose = [v for values in directives.values() for v in values if v in UNSAFE]
    assert not loose, f"{response.request['PATH_INFO']} allows {loose}"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


# --- Production settings ----------------------------------------------------------------------------


def test_check_deploy_under_production_settings_gives_no_warning():
    result = production_run("manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_force_https_with_hsts_and_secure_cookies():
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps("
        "[s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.X_FRAME_OPTIONS, s.DEBUG,"
        " 'csp.middleware.CSPMiddleware' in s.MIDDLEWARE]))"
    )
    result = production_run("-c", script)
    assert result.returncode == 0, result.stderr
    redirect, hsts, subdomains, session_secure, csrf_secure, frames, debug, csp = json.loads(result.stdout)
    assert redirect and hsts >= 31536000 and subdomains
    assert session_secure and csrf_secure and frames == "DENY" and not debug and csp


def test_https_responses_carry_hsts(client):
    response = client.get(reverse("login"), secure=True)
    assert response.status_code == 200
    hsts = response.headers["Strict-Transport-Security"]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts


# --- Staff pages -------------------------------------------------------------------------------------


def test_sign_in_and_error_pages_send_the_strict_policy(client, db):
    assert_strict(client.get(reverse("login")))
    assert_strict(client.get("/no-such-page/"))  # 302 to sign in, still with headers
    assert_strict(client.get(reverse("healthz-web")))


@pytest.mark.parametrize("name", ["home", "dashboard", "participants:participant-list", "participants:today"])
def test_signed_in_pages_send_the_strict_policy(client, investigator, participant, name):  # noqa: F811
    sign_in(client, investigator)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert_strict(response)


def test_not_found_and_forbidden_pages_send_the_strict_policy(client, coordinator):  # noqa: F811
    sign_in(client, coordinator)
    missing = client.get(reverse("participants:participant-detail", args=[10**9]))
    forbidden = client.get(reverse("user-list"))
    assert (missing.status_code, forbidden.status_code) == (404, 403)
    assert_strict(missing)
    assert_strict(forbidden)


# --- Patient pages -----------------------------------------------------------------------------------


@pytest.fixture
def token(participant):  # noqa: F811
    return link_create(invite(participant.visits.get(code="W0"), "pain_nrs"))


def test_questionnaire_pages_send_the_strict_policy_and_no_referrer(client, token):
    pages = [
        client.get(reverse("pro_measures:questionnaire", args=[token])),
        client.get(reverse("pro_measures:questionnaire-page", args=[token, 1])),
        client.get(reverse("pro_measures:questionnaire-review", args=[token])),
        client.get(reverse("pro_measures:questionnaire", args=["not-a-link-" + "x" * 20])),
    ]
    for response in pages:
        assert response.status_code in (200, 302, 404), response.status_code
        assert_strict(response)
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert [page.status_code for page in pages] == [200, 200, 200, 404]
    assert b"<form" in pages[1].content  # the real questionnaire page, not an error page


# --- Templates ----------------------------------------------------------------------------------------

# HTML that the strict policy refuses: inline scripts and handlers, inline styles, javascript: URLs.
INLINE = re.compile(
    r"<script(?![^>]*\ssrc=)[^>]*>|<style[\s>]|\sstyle\s*=|\son[a-z]+\s*=\s*[\"']|javascript:", re.I
)
# Rendered by WeasyPrint (PDF) or sent as e-mail: no browser applies our policy to them.
NOT_SERVED_AS_PAGES = ("reports/", "pro_measures/email/")


def test_no_template_has_inline_script_or_style():
    offending = []
    for directory in [ROOT / "templates", *ROOT.glob("*/templates"), *ROOT.glob("trial/*/templates")]:
        for path in directory.rglob("*.html"):
            name = path.relative_to(directory).as_posix()
            if name.startswith(NOT_SERVED_AS_PAGES):
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if INLINE.search(line):
                    offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not offending, (
        "inline script/style refused by the Content-Security-Policy; move it to static/js or "
        "static/css (a class, or a data- attribute read by a script):\n" + "\n".join(offending)
    )


def test_no_form_widget_sets_an_inline_style():
    offending = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for package in ("trial", "participants", "lesions", "pro_measures")
        for path in (ROOT / package).rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"[\"']style[\"']\s*:", line)
    ]
    assert not offending, "style attributes are refused by the Content-Security-Policy:\n" + "\n".join(
        offending
    )
