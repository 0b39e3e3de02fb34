"""Password reset by e-mail: the link in the e-mail sets a new password that meets the password
rules; the pages never tell whether an address has an account; a reset neither signs in nor
skips the second factor."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client

from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, UserFactory
from trial import tasks

pytestmark = pytest.mark.django_db

RESET = "/account/password-reset/"
NEW_PASSWORD = "violet kettle on the hill"


@pytest.fixture
def send_reset(client, celery_eager, django_capture_on_commit_callbacks):
    """Ask for a reset link for `email`, running the queued e-mail task."""

    def send(email: str):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(RESET, {"email": email})

    return send


def link_in(message) -> str:
    """The path of the reset link in an e-mail (the link itself starts with SITE_URL)."""
    match = re.search(
        re.escape(settings.SITE_URL) + r"(/account/password-reset/[^/\s]+/[^/\s]+/)", message.body
    )
    assert match, message.body
    return match.group(1)


def set_password(client, link: str, password: str, confirmation: str | None = None):
    form_url = client.get(link)["Location"]  # Django moves the token out of the URL first
    return client.post(form_url, {"new_password1": password, "new_password2": confirmation or password})


def test_sign_in_page_links_to_password_reset(client):
    html = client.get("/account/login/").content.decode()

    assert re.search(rf'<a href="{RESET}">\s*Forgot your password\?\s*</a>', html)


def test_reset_page_has_a_labelled_e_mail_field(client):
    html = client.get(RESET).content.decode()

    field = re.search(r'<input[^>]*name="email"[^>]*>', html).group(0)
    assert 'autocomplete="email"' in field
    assert re.search(r'<label\s+for="id_email"', html)


def test_the_e_mail_link_lets_the_user_choose_a_new_password(client, send_reset):
    user = UserFactory(full_name="Dana Data")

    response = send_reset(user.email.upper())

    assert response["Location"] == "/account/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email]
    assert "Hello Dana Data," in message.body
    assert "authenticator app" in message.body

    response = set_password(client, link_in(message), NEW_PASSWORD)

    assert response["Location"] == "/account/password-reset/complete/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_an_address_without_an_account_gets_the_same_answer_and_no_e_mail(client, send_reset):
    UserFactory(email="known@example.org")

    unknown = send_reset("unknown@example.org")
    known = send_reset("known@example.org")

    assert unknown.status_code == known.status_code == 302
    assert unknown["Location"] == known["Location"]
    assert [m.to for m in mail.outbox] == [["known@example.org"]]
    page = client.get(unknown["Location"]).content.decode()
    assert "If an account uses the address you entered" in page


def test_deactivated_account_gets_no_e_mail(send_reset):
    user = UserFactory(is_active=False)

    send_reset(user.email)

    assert mail.outbox == []


def test_reset_link_is_not_sent_from_the_request_itself(client, django_capture_on_commit_callbacks):
    # It is queued for a Celery worker, so the page answers as fast for a known address as for
    # an unknown one, and a mail server that is down does not show up as an error page.
    user = UserFactory()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(RESET, {"email": user.email})

    assert response.status_code == 302
    assert len(queued) == 1
    assert mail.outbox == []


def test_new_password_must_meet_the_password_rules(client, send_reset):
    user = UserFactory()
    send_reset(user.email)

    response = set_password(client, link_in(mail.outbox[0]), "short1")

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'role="alert"[^>]*>.*This password is too short', html, re.S)
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)


def test_the_link_works_only_once(client, send_reset):
    user = UserFactory()
    send_reset(user.email)
    link = link_in(mail.outbox[0])
    set_password(client, link, NEW_PASSWORD)

    response = Client().get(link)

    assert response.status_code == 200
    assert "This link does not work" in response.content.decode()


def test_a_reset_does_not_sign_in_and_the_next_sign_in_still_asks_for_the_code(client, send_reset):
    user = UserFactory()
    send_reset(user.email)
    set_password(client, link_in(mail.outbox[0]), NEW_PASSWORD)

    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"].startswith("/account/login/")

    response = client.post("/account/login/", {"username": user.email, "password": NEW_PASSWORD})
    assert response["Location"] == "/account/two-factor/"
    assert client.get("/")["Location"].startswith("/account/two-factor/")
    assert user.totpdevice_set.filter(confirmed=True).exists()


def test_a_reset_signs_out_sessions_that_used_the_old_password(client, send_reset):
    user = UserFactory()
    elsewhere = sign_in(Client(), user)
    assert elsewhere.get("/").status_code == 200

    send_reset(user.email)
    set_password(client, link_in(mail.outbox[0]), NEW_PASSWORD)

    assert elsewhere.get("/")["Location"].startswith("/account/login/")


def test_task_sends_nothing_for_an_account_without_a_usable_password():
    user = UserFactory()
    user.set_unusable_password()
    user.save()

    assert tasks.password_reset_email_send.apply(kwargs={"user_id": user.pk}).get() is False
    assert mail.outbox == []
