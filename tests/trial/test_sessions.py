"""Session limits: signed out after 30 minutes without a request, and 12 hours after signing in
however active, with a message saying why and a way back to the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django_otp.oath import totp

from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, UserFactory
from trial.accounts.sessions import LAST_REQUEST_AT, SIGNED_IN_AT
from trial.roles import Role

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 25, 8, 0, 5, tzinfo=UTC)
LOGIN = "/account/login/"
IDLE_MESSAGE = "You were signed out after 30 minutes without activity."
ABSOLUTE_MESSAGE = "You were signed out after 12 hours; please sign in again."


def signed_out_with(client, response, message: str, next_url: str) -> None:
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={next_url}"
    assert "_auth_user_id" not in client.session
    login_page = client.get(response["Location"]).content.decode()
    assert message in login_page


def test_the_limits_are_the_configured_ones():
    # The messages below name these durations.
    assert settings.SESSION_IDLE_TIMEOUT == timedelta(minutes=30)
    assert settings.SESSION_ABSOLUTE_TIMEOUT == timedelta(hours=12)


def test_thirty_minutes_without_a_request_signs_out_with_a_message_and_a_way_back(client):
    user = UserFactory(role=Role.COORDINATOR)
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        assert client.get("/sites/").status_code == 200

        clock.shift(timedelta(minutes=29))
        assert client.get("/sites/").status_code == 200

        clock.shift(timedelta(minutes=30, seconds=1))
        response = client.get("/sites/?page=2")

        signed_out_with(client, response, IDLE_MESSAGE, "/sites/%3Fpage%3D2")


def test_regular_activity_keeps_the_session(client):
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        for _ in range(9):  # three hours
            clock.shift(timedelta(minutes=20))
            assert client.get("/").status_code == 200


def test_twelve_hours_after_signing_in_the_session_ends_however_active(client):
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        for _ in range(28):  # 11 h 40 min
            clock.shift(timedelta(minutes=25))
            assert client.get("/").status_code == 200

        clock.shift(timedelta(minutes=25))  # 12 h 05 min
        response = client.get("/")

        signed_out_with(client, response, ABSOLUTE_MESSAGE, "/")


def test_signing_in_on_the_sign_in_page_starts_both_clocks(client):
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD})
        client.post("/account/two-factor/", {"otp_token": f"{totp(user.totpdevice_set.get().bin_key):06d}"})
        assert client.get("/").status_code == 200

        clock.shift(timedelta(minutes=31))
        response = client.get("/")

        signed_out_with(client, response, IDLE_MESSAGE, "/")


def test_a_session_without_recorded_times_gets_them_at_its_next_request(client):
    # e.g. a session from before these limits existed.
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)
        session = client.session
        del session[SIGNED_IN_AT], session[LAST_REQUEST_AT]
        session.save()

        clock.shift(timedelta(hours=2))
        assert client.get("/").status_code == 200

        clock.shift(timedelta(minutes=31))
        signed_out_with(client, client.get("/"), IDLE_MESSAGE, "/")


def test_password_step_alone_also_times_out(client):
    user = UserFactory()
    with time_machine.travel(START, tick=False) as clock:
        client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD})

        clock.shift(timedelta(minutes=31))
        response = client.get("/account/two-factor/")

        signed_out_with(client, response, IDLE_MESSAGE, "/account/two-factor/")


def test_a_form_sent_after_the_timeout_returns_to_the_page_it_was_on(client, site_a):
    user = UserFactory(role=Role.COORDINATOR, sites=[site_a])
    with time_machine.travel(START, tick=False) as clock:
        sign_in(client, user)

        clock.shift(timedelta(minutes=31))
        response = client.post("/site/select/", {"site": site_a.pk}, HTTP_REFERER="http://testserver/sites/")

        signed_out_with(client, response, IDLE_MESSAGE, "/sites/")
