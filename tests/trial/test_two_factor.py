"""The second factor: a code from the authenticator app or a one-use backup code after the
password, first-time enrolment of an app, and the middleware that lets nobody past the password
alone."""

from __future__ import annotations

import re
from base64 import b32encode
from datetime import UTC, datetime, timedelta

import pytest
import segno
import time_machine
from django.conf import settings
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import DEFAULT_PASSWORD, UserFactory
from trial.roles import Role

pytestmark = pytest.mark.django_db

LOGIN = "/account/login/"
VERIFY = "/account/two-factor/"
SETUP = "/account/two-factor/setup/"
NOW = datetime(2026, 11, 25, 9, 0, 10, tzinfo=UTC)  # 10 s into a 30 s TOTP step


def code_of(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows now."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def wrong_code_of(device: TOTPDevice) -> str:
    return f"{(int(code_of(device)) + 500_000) % 1_000_000:06d}"


def password_step(client, user, next_url: str | None = None):
    url = f"{LOGIN}?next={next_url}" if next_url else LOGIN
    data = {"username": user.email, "password": DEFAULT_PASSWORD, **({"next": next_url} if next_url else {})}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()
    return response


def backup_codes_for(user, *codes: str) -> StaticDevice:
    device = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    for code in codes:
        device.token_set.create(token=code)
    return device


def is_verified(client) -> bool:
    return client.get("/").status_code == 200


# --- Verifying ------------------------------------------------------------------------------


def test_password_alone_opens_no_page_and_the_requested_page_is_kept(client):
    user = UserFactory()
    password_step(client, user)

    response = client.get("/sites/?page=2")

    assert response.status_code == 302
    assert response["Location"] == "/account/two-factor/?next=/sites/%3Fpage%3D2"


def test_code_page_has_one_labelled_field_for_app_or_backup_codes_and_a_verify_button(client):
    user = UserFactory()
    password_step(client, user)

    html = client.get(VERIFY).content.decode()

    field = re.search(r"<input[^>]*name=\"otp_token\"[^>]*>", html).group(0)
    assert 'autocomplete="one-time-code"' in field
    assert "inputmode" not in field  # backup codes contain letters
    field_id = re.search(r'id="([^"]+)"', field).group(1)
    label = re.search(rf'<label\s+for="{field_id}"[^>]*>(.*?)</label>', html, re.S).group(1)
    assert "Code from your authenticator app, or a backup code" in label
    assert re.search(r"<button[^>]*>\s*Verify\s*</button>", html)
    assert len(re.findall(r"<input[^>]*type=\"(?:text|password|email)\"", html)) == 1


@time_machine.travel(NOW, tick=False)
def test_current_app_code_signs_in_and_returns_to_the_requested_page(client):
    user = UserFactory(role=Role.COORDINATOR)
    password_step(client, user, next_url="/sites/")

    response = client.post(f"{VERIFY}?next=/sites/", {"otp_token": code_of(user.totpdevice_set.get())})

    assert response.status_code == 302
    assert response["Location"] == "/sites/"
    assert client.get("/sites/").status_code == 200


@time_machine.travel(NOW, tick=False)
def test_without_next_the_code_leads_home(client):
    user = UserFactory()
    password_step(client, user)

    response = client.post(VERIFY, {"otp_token": code_of(user.totpdevice_set.get())})

    assert response["Location"] == "/"


@time_machine.travel(NOW, tick=False)
def test_a_new_session_key_is_issued_once_both_factors_are_passed(client):
    user = UserFactory()
    password_step(client, user)
    key_after_password = client.session.session_key

    client.post(VERIFY, {"otp_token": code_of(user.totpdevice_set.get())})

    assert client.session.session_key != key_after_password
    assert is_verified(client)


@time_machine.travel(NOW, tick=False)
def test_wrong_code_is_refused_with_an_error_announced_to_screen_readers(client):
    user = UserFactory()
    password_step(client, user)

    response = client.post(VERIFY, {"otp_token": wrong_code_of(user.totpdevice_set.get())})

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'role="alert"[^>]*>.*That code is not right', html, re.S)
    assert 'aria-invalid="true"' in html
    assert not is_verified(client)


def test_app_code_cannot_be_used_twice():
    user = UserFactory()
    first, second = Client(), Client()
    with time_machine.travel(NOW, tick=False):
        code = code_of(user.totpdevice_set.get())
        password_step(first, user)
        assert first.post(VERIFY, {"otp_token": code}).status_code == 302

        password_step(second, user)
        response = second.post(VERIFY, {"otp_token": code})

    assert response.status_code == 200
    assert not is_verified(second)


def test_after_a_wrong_code_the_user_must_wait_before_the_next_try(client):
    user = UserFactory()
    device = user.totpdevice_set.get()
    with time_machine.travel(NOW, tick=False) as clock:
        password_step(client, user)
        client.post(VERIFY, {"otp_token": wrong_code_of(device)})

        # django-otp's back-off: 1 s after one wrong code, 2 s after two, 4 s after three ...
        response = client.post(VERIFY, {"otp_token": code_of(device)})
        assert "Too many wrong codes. Wait 1 second, then try again." in response.content.decode()
        assert not is_verified(client)

        clock.shift(timedelta(seconds=1))
        assert client.post(VERIFY, {"otp_token": code_of(device)})["Location"] == "/"


@time_machine.travel(NOW, tick=False)
def test_backup_code_signs_in_once_and_says_how_many_are_left(client):
    user = UserFactory()
    backup_codes_for(user, "abcd2345", "efgh6723")
    password_step(client, user)

    response = client.post(VERIFY, {"otp_token": " ABCD 2345 "}, follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert "You used a backup code; 1 is left." in response.content.decode()
    assert not StaticToken.objects.filter(token="abcd2345").exists()

    other = Client()
    password_step(other, user)
    assert other.post(VERIFY, {"otp_token": "abcd2345"}).status_code == 200
    assert not is_verified(other)


@time_machine.travel(NOW, tick=False)
def test_a_mistyped_app_code_does_not_hold_up_a_backup_code(client):
    user = UserFactory()
    backup_codes_for(user, "abcd2345")
    password_step(client, user)

    client.post(VERIFY, {"otp_token": wrong_code_of(user.totpdevice_set.get())})
    response = client.post(VERIFY, {"otp_token": "abcd2345"})

    assert response["Location"] == "/"


@time_machine.travel(NOW, tick=False)
def test_another_users_backup_code_is_refused(client):
    user, other = UserFactory(), UserFactory()
    backup_codes_for(other, "abcd2345")
    password_step(client, user)

    assert client.post(VERIFY, {"otp_token": "abcd2345"}).status_code == 200
    assert not is_verified(client)
    assert StaticToken.objects.filter(token="abcd2345").exists()


def test_verified_user_opening_the_code_page_goes_on_to_next(signed_in):
    client = signed_in(UserFactory())

    assert client.get(f"{VERIFY}?next=/sites/")["Location"] == "/sites/"


# --- What the middleware lets through ---------------------------------------------------------


def test_sign_out_works_before_the_second_factor(client):
    user = UserFactory()
    password_step(client, user)

    response = client.post("/account/logout/")

    assert response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session


def test_health_check_and_static_files_are_not_sent_to_the_second_factor(client):
    password_step(client, UserFactory())

    assert client.get("/healthz").status_code in (200, 503)
    assert client.get(f"{settings.STATIC_URL}css/edc.css").status_code != 302


def test_anonymous_visitor_is_sent_to_the_password_page_not_the_code_page(client):
    response = client.get("/sites/")

    assert response["Location"] == f"{LOGIN}?next=/sites/"


def test_user_without_an_app_is_sent_from_any_page_to_set_one_up(client):
    password_step(client, UserFactory(totp=False))

    response = client.get("/sites/")

    assert response["Location"] == f"{SETUP}?next=/sites/"
    assert client.get(VERIFY)["Location"] == SETUP


def test_user_whose_app_was_removed_must_set_up_a_new_one_even_mid_session(signed_in):
    user = UserFactory()
    client = signed_in(user)
    assert is_verified(client)

    TOTPDevice.objects.filter(user=user).delete()

    assert client.get("/")["Location"] == f"{SETUP}?next=/"


# --- Setting up an authenticator app -------------------------------------------------------


def qr_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of a QR code drawn by segno as one SVG path ("M x y h n m dx dy ...")."""
    path = re.search(r'<path[^>]* stroke="[^"]+"[^>]* d="([^"]+)"', svg).group(1)
    x = y = 0.0
    dark = set()
    for command, numbers in re.findall(r"([MmHh])([-\d.\s]+)", path):
        values = [float(n) for n in numbers.split()]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            dark.update((int(x) + i, int(y)) for i in range(int(values[0])))
            x += values[0]
    return dark


def segno_modules(content: str, error: str) -> set[tuple[int, int]]:
    code = segno.make(content, error=error)
    border = 4  # segno's default quiet zone
    return {
        (col + border, row + border)
        for row, line in enumerate(code.matrix)
        for col, module in enumerate(line)
        if module
    }


def test_setup_page_shows_the_new_apps_key_as_an_inline_qr_code_and_as_text(client):
    user = UserFactory(totp=False)
    password_step(client, user)

    html = client.get(SETUP).content.decode()

    device = TOTPDevice.objects.get(user=user, confirmed=False)
    svg = re.search(r"<svg.*?</svg>", html, re.S).group(0)
    assert 'role="img"' in svg and "aria-label=" in svg
    assert any(qr_modules(svg) == segno_modules(device.config_url, level) for level in "lmqh")
    assert "<img" not in html
    assert b32encode(device.bin_key).decode() in html
    assert re.search(r'<input[^>]*name="otp_token"', html)


def test_reloading_the_setup_page_keeps_the_same_key(client):
    user = UserFactory(totp=False)
    password_step(client, user)

    first = re.search(r'id="totp-secret">(\w+)<', client.get(SETUP).content.decode()).group(1)
    second = re.search(r'id="totp-secret">(\w+)<', client.get(SETUP).content.decode()).group(1)

    assert first == second
    assert TOTPDevice.objects.filter(user=user).count() == 1


@time_machine.travel(NOW, tick=False)
def test_right_code_enrols_the_app_signs_in_and_shows_ten_backup_codes_once(client):
    user = UserFactory(totp=False)
    password_step(client, user)
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user)

    response = client.post(SETUP, {"otp_token": code_of(device)})

    assert response.status_code == 200
    html = response.content.decode()
    codes = set(
        StaticToken.objects.filter(device__user=user, device__name="Backup codes").values_list(
            "token", flat=True
        )
    )
    assert len(codes) == 10
    assert all(code in html for code in codes)
    assert re.search(r'<a[^>]*href="/"[^>]*>\s*Continue\s*</a>', html)
    assert "no-store" in response["Cache-Control"]
    device.refresh_from_db()
    assert device.confirmed
    assert is_verified(client)
    # Not shown again.
    assert client.get(SETUP)["Location"] == "/"


def test_backup_code_from_enrolment_works_at_the_next_sign_in(client):
    user = UserFactory(totp=False)
    with time_machine.travel(NOW, tick=False):
        password_step(client, user)
        client.get(SETUP)
        html = client.post(SETUP, {"otp_token": code_of(TOTPDevice.objects.get(user=user))}).content.decode()
    code = re.search(r'data-testid="backup-codes">\s*<li[^>]*>(\w+)</li>', html).group(1)

    later = Client()
    password_step(later, user)
    assert later.post(VERIFY, {"otp_token": code})["Location"] == "/"


@time_machine.travel(NOW, tick=False)
def test_wrong_code_at_setup_leaves_the_app_unenrolled(client):
    user = UserFactory(totp=False)
    password_step(client, user)
    client.get(SETUP)
    device = TOTPDevice.objects.get(user=user)

    response = client.post(SETUP, {"otp_token": wrong_code_of(device)})

    assert response.status_code == 200
    assert re.search(r'role="alert"[^>]*>.*That code is not right', response.content.decode(), re.S)
    device.refresh_from_db()
    assert not device.confirmed
    assert not StaticDevice.objects.filter(user=user).exists()
    assert not is_verified(client)


@time_machine.travel(NOW, tick=False)
def test_someone_with_only_the_password_cannot_enrol_another_app(client):
    user = UserFactory()  # has an app
    password_step(client, user)

    assert client.get(SETUP)["Location"] == VERIFY
    attacker_device = TOTPDevice.objects.create(user=user, name="Attacker", confirmed=False)
    response = client.post(SETUP, {"otp_token": code_of(attacker_device)})

    assert response["Location"] == VERIFY
    attacker_device.refresh_from_db()
    assert not attacker_device.confirmed
    assert not is_verified(client)
