"""Lockout after repeated failed sign-ins (django-axes): the page, the right password refused
while locked, the end of the lock, and the e-mail to the administrators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.cache import cache

from tests.factories import DEFAULT_PASSWORD, UserFactory
from trial import tasks
from trial.roles import Role

pytestmark = pytest.mark.django_db

LOGIN = "/account/login/"
START = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
WRONG = "not my password"


def attempt(client, email: str, password: str = WRONG, **headers):
    return client.post(LOGIN, {"username": email, "password": password}, **headers)


def lock(client, email: str, **headers):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert attempt(client, email, **headers).status_code == 200
    return attempt(client, email, **headers)


def test_the_limit_is_five_failures_and_the_lock_lasts_thirty_minutes():
    # The page and the tests below rely on these values.
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=30)


def test_the_fifth_wrong_password_shows_the_account_locked_page(client):
    user = UserFactory()

    for _ in range(4):
        response = attempt(client, user.email)
        assert response.status_code == 200
        assert "Account locked" not in response.content.decode()
    response = attempt(client, user.email)

    assert response.status_code == 403
    html = response.content.decode()
    assert "<h1" in html and "Account locked</h1>" in html
    assert "locked after 5 failed sign-ins in a row" in html
    assert "unlocks by itself 30 minutes after it was locked" in html
    assert "ask your study administrator to unlock" in html


def test_the_right_password_is_refused_while_locked(client):
    user = UserFactory()
    lock(client, user.email)

    response = attempt(client, user.email, DEFAULT_PASSWORD)

    assert response.status_code == 403
    assert "Account locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"].startswith(LOGIN)


def test_the_lock_ends_thirty_minutes_after_it_began_even_if_the_user_kept_trying(client):
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        lock(client, user.email)

        clock.shift(timedelta(minutes=29))
        assert attempt(client, user.email, DEFAULT_PASSWORD).status_code == 403

        clock.shift(timedelta(minutes=1, seconds=1))
        response = attempt(client, user.email, DEFAULT_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/"


def test_capital_letters_in_the_address_do_not_buy_more_attempts(client):
    user = UserFactory(email="ira.investigator@example.org")
    variants = [
        "Ira.Investigator@example.org",
        "IRA.INVESTIGATOR@EXAMPLE.ORG",
        "ira.investigator@Example.org",
    ]

    # A different browser each time, so that only the count for the account can lock.
    for number in range(4):
        response = attempt(client, variants[number % 3], HTTP_USER_AGENT=f"browser {number}")
        assert response.status_code == 200
    response = attempt(client, user.email, HTTP_USER_AGENT="browser 4")

    assert response.status_code == 403


def test_one_browser_trying_many_accounts_is_locked_out(client):
    for number in range(4):
        assert attempt(client, f"guess{number}@example.org").status_code == 200

    response = attempt(client, "guess4@example.org")

    assert response.status_code == 403


def test_administrators_are_emailed_once_naming_the_account_and_the_address(
    client, make_user, celery_eager, django_capture_on_commit_callbacks
):
    administrator = make_user(role=Role.ADMINISTRATOR, email="alex.admin@example.org")
    make_user(role=Role.ADMINISTRATOR, email="former.admin@example.org", is_active=False)
    make_user(role=Role.COORDINATOR, email="casey.coordinator@example.org")
    user = make_user(role=Role.MONITOR, email="morgan.monitor@example.org", full_name="Morgan Monitor")

    with django_capture_on_commit_callbacks(execute=True):
        lock(client, user.email, REMOTE_ADDR="203.0.113.9")
        # Attempts while locked do not send it again.
        attempt(client, user.email, REMOTE_ADDR="203.0.113.9")
        attempt(client, user.email, DEFAULT_PASSWORD, REMOTE_ADDR="203.0.113.9")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [administrator.email]
    assert "Account locked: morgan.monitor@example.org" in message.subject
    assert "Morgan Monitor <morgan.monitor@example.org>" in message.body
    assert "Client address: 203.0.113.9" in message.body
    assert "unlocks by itself 30 minutes after it was locked" in message.body
    assert "axes_reset_username morgan.monitor@example.org" in message.body


def test_lockout_of_an_address_without_an_account_says_so(make_user):
    administrator = make_user(role=Role.ADMINISTRATOR)

    sent_to = tasks.lockout_notify_administrators.apply(
        kwargs={"username": "nobody@example.org", "ip_address": "203.0.113.9", "locked_at": START.isoformat()}
    ).get()

    assert sent_to == 1
    assert mail.outbox[0].to == [administrator.email]
    assert "no account has this e-mail address" in mail.outbox[0].body
    assert "Locked at: 2026-11-25 08:00:00 UTC" in mail.outbox[0].body


def test_typed_address_cannot_add_mail_headers(make_user):
    administrator = make_user(role=Role.ADMINISTRATOR)

    tasks.lockout_notify_administrators.apply(
        kwargs={
            "username": "x@example.org\nBcc: victim@example.org",
            "ip_address": "203.0.113.9",
            "locked_at": START.isoformat(),
        }
    ).get()

    message = mail.outbox[0]
    assert "\n" not in message.subject
    assert message.recipients() == [administrator.email]


def test_no_administrator_no_e_mail(make_user):
    make_user(role=Role.COORDINATOR)

    sent_to = tasks.lockout_notify_administrators.apply(
        kwargs={"username": "x@example.org", "ip_address": "203.0.113.9", "locked_at": START.isoformat()}
    ).get()

    assert sent_to == 0
    assert mail.outbox == []


BEHIND_PROXY = {"SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")}


def test_behind_the_proxy_one_client_guessing_accounts_does_not_lock_out_the_others(client, settings):
    settings.SECURE_PROXY_SSL_HEADER = BEHIND_PROXY["SECURE_PROXY_SSL_HEADER"]
    attacker = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.7"}
    colleague = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.8"}
    for number in range(4):
        assert attempt(client, f"guess{number}@example.org", **attacker).status_code == 200
    assert attempt(client, "guess4@example.org", **attacker).status_code == 403
    # A forged first entry does not help the attacker: the proxy's own (last) entry counts.
    forged = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "198.51.100.8, 198.51.100.7"}
    assert attempt(client, "guess5@example.org", **forged).status_code == 403

    # Same proxy, same browser make: without the forwarded address both would be 10.0.0.2.
    user = UserFactory()
    assert attempt(client, user.email, DEFAULT_PASSWORD, **colleague).status_code == 302


def test_without_a_proxy_x_forwarded_for_is_ignored(client):
    for number in range(5):
        attempt(client, f"guess{number}@example.org", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")
    assert attempt(client, "guess9@example.org", HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 403


def test_lockout_e_mails_are_capped_per_hour_with_one_e_mail_saying_so(make_user, settings):
    settings.LOCKOUT_EMAILS_PER_HOUR = 3
    make_user(role=Role.ADMINISTRATOR)
    hour = datetime(2031, 1, 1, 5, 0, tzinfo=UTC)  # an hour no other test locks anything in
    cache.delete("accounts:lockout-emails:2031010105")

    sent = [
        tasks.lockout_notify_administrators.apply(
            kwargs={
                "username": f"guess{n}@example.org",
                "ip_address": "203.0.113.9",
                "locked_at": (hour + timedelta(minutes=n)).isoformat(),
            }
        ).get()
        for n in range(6)
    ]

    assert sent == [1, 1, 1, 0, 0, 0]
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == 4 and subjects[-1].endswith("Many accounts locked")
    assert (
        "More than 3 sign-in lockouts happened in the hour from 2031-01-01 05:00 UTC" in mail.outbox[-1].body
    )
    assert "/users/access-log/" in mail.outbox[-1].body
