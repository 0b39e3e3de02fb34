"""Signing in with e-mail and password: the page, where a right password leads (never straight
into the EDC), wrong passwords, sign-out and the session cookie."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings

from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/account/login/"


class Page(HTMLParser):
    """The inputs (by name), labels (by `for`) and buttons of an HTML page."""

    def __init__(self, html: str):
        super().__init__()
        self.inputs: dict[str, dict] = {}
        self.labels: dict[str, str] = {}
        self.buttons: list[str] = []
        self._label_for = None
        self._in_button = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and "name" in attrs:
            self.inputs[attrs["name"]] = attrs
        elif tag == "label":
            self._label_for = attrs.get("for")
            self.labels[self._label_for] = ""
        elif tag == "button":
            self._in_button = True
            self.buttons.append("")

    def handle_endtag(self, tag):
        if tag == "label":
            self._label_for = None
        elif tag == "button":
            self._in_button = False

    def handle_data(self, data):
        if self._label_for is not None:
            self.labels[self._label_for] += data.strip()
        if self._in_button:
            self.buttons[-1] += data.strip()


def post_password(
    client, email: str, password: str = DEFAULT_PASSWORD, next_url: str | None = None, **headers
):
    url = f"{LOGIN}?next={next_url}" if next_url else LOGIN
    data = {"username": email, "password": password, **({"next": next_url} if next_url else {})}
    return client.post(url, data, **headers)


def test_sign_in_page_has_labelled_fields_browsers_can_fill_and_a_sign_in_button(client):
    page = Page(client.get(LOGIN).content.decode())

    email, password = page.inputs["username"], page.inputs["password"]
    assert email["type"] == "email"
    assert email["autocomplete"] == "username"
    assert password["type"] == "password"
    assert password["autocomplete"] == "current-password"
    assert page.labels[email["id"]].startswith("E-mail address")
    assert page.labels[password["id"]].startswith("Password")
    assert "Sign in" in page.buttons


def test_right_password_leads_to_the_authenticator_code_keeping_the_requested_page(client):
    user = UserFactory()

    response = post_password(client, user.email, next_url="/sites/")

    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=/sites/"
    # The password alone does not open the page.
    assert client.get("/sites/")["Location"].startswith("/account/two-factor/")


def test_right_password_of_a_user_without_an_authenticator_app_leads_to_setting_one_up(client):
    user = UserFactory(totp=False)

    response = post_password(client, user.email)

    assert response["Location"] == "/account/two-factor/setup/"


def test_wrong_password_is_refused_with_an_error_announced_to_screen_readers(client):
    user = UserFactory()

    response = post_password(client, user.email, password="not the password")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "Please enter a correct e-mail address and password" in html
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"].startswith(LOGIN)


def test_e_mail_address_is_accepted_in_any_case(client):
    user = UserFactory(email="cora.coordinator@example.org")

    response = post_password(client, "Cora.Coordinator@EXAMPLE.org")

    assert response["Location"] == "/account/two-factor/"
    assert client.session["_auth_user_id"] == str(user.pk)


def test_deactivated_user_cannot_sign_in(client):
    user = UserFactory(is_active=False)

    response = post_password(client, user.email)

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_next_pointing_to_another_site_is_ignored(client):
    user = UserFactory()

    response = post_password(client, user.email, next_url="https://evil.example/")

    assert response["Location"] == "/account/two-factor/"


def test_session_cookie_of_the_sign_in_response_is_httponly_and_samesite_lax(client):
    user = UserFactory()

    response = post_password(client, user.email)

    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie.value
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_signed_in_user_opening_the_sign_in_page_goes_home(client):
    user = UserFactory()
    sign_in(client, user)

    response = client.get(LOGIN)

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_sign_out_ends_the_session(client):
    user = UserFactory()
    sign_in(client, user)
    assert client.get("/").status_code == 200

    response = client.post("/account/logout/")

    assert response["Location"] == LOGIN
    assert client.get("/")["Location"].startswith(LOGIN)


def test_sign_out_after_the_session_has_gone_just_shows_the_sign_in_page(client):
    response = client.post("/account/logout/")

    assert response["Location"] == LOGIN


def test_sign_ins_and_failed_sign_ins_are_recorded_with_the_client_address(client):
    user = UserFactory()

    post_password(client, user.email, password="not the password", REMOTE_ADDR="198.51.100.7")
    assert AccessAttempt.objects.filter(
        username=user.email, ip_address="198.51.100.7", failures_since_start=1
    ).exists()

    post_password(client, user.email, REMOTE_ADDR="198.51.100.7")
    assert AccessLog.objects.filter(username=user.email, ip_address="198.51.100.7").exists()
