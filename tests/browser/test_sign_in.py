"""In the browser: signing in with a password and a second factor, first-time enrolment of an
authenticator app, backup codes, lockout after repeated failures, and the navigation each role
gets once signed in."""

from __future__ import annotations

import re
from base64 import b32encode

import pytest
from django.conf import settings
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from tests.factories import DEFAULT_PASSWORD, UserFactory
from trial.navigation import NAVIGATION
from trial.roles import Role, definition_for

pytestmark = pytest.mark.browser

LOGIN = "/account/login/"
TWO_FACTOR = "/account/two-factor/"
TWO_FACTOR_SETUP = "/account/two-factor/setup/"


def current_code(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows now."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]


def submit_password(page: Page, checkpoint, user, password: str = DEFAULT_PASSWORD, step: str = "password"):
    """On the sign-in page: enter e-mail and password, press "Sign in"; returns the response."""
    page.locator("[name=username]").fill(user.email)
    page.locator("[name=password]").fill(password)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Sign in").click()
    checkpoint(step)
    return navigation.value


def submit_code(page: Page, checkpoint, code: str, step: str = "code-entered"):
    page.locator("[name=otp_token]").fill(code)
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Verify").click()
    checkpoint(step)
    return navigation.value


def expected_navigation(role: Role) -> list[str]:
    """The menu labels trial/navigation.py declares for `role`, in order.

    An item shows once the role's permissions (trial/roles.py) include the one it names and its
    page exists: NAVIGATION declares some pages before their app routes them.
    """
    granted = definition_for(role).permissions
    return [
        str(item.label)
        for item in NAVIGATION
        if (item.permission is None or item.permission in granted) and item.url() is not None
    ]


def test_sign_in_with_password_and_authenticator_code_lands_on_home_with_navigation(
    page, visit, checkpoint, make_user, site_a
):
    user = make_user(role=Role.COORDINATOR, sites=[site_a], full_name="Cora Coordinator")
    device = user.totpdevice_set.get(confirmed=True)

    visit(LOGIN, "sign-in")
    submit_password(page, checkpoint, user)
    assert path_of(page) == TWO_FACTOR

    submit_code(page, checkpoint, current_code(device), step="home")
    assert path_of(page) == "/"
    expect(page.get_by_test_id("role-navigation")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Cora Coordinator")


def test_a_wrong_authenticator_code_does_not_sign_in(page, visit, checkpoint, make_user):
    user = make_user(role=Role.COORDINATOR)
    device = user.totpdevice_set.get(confirmed=True)
    wrong = f"{(int(current_code(device)) + 500_000) % 1_000_000:06d}"

    visit(LOGIN, "sign-in")
    submit_password(page, checkpoint, user)
    submit_code(page, checkpoint, wrong, step="code-refused")
    assert path_of(page) == TWO_FACTOR
    expect(page.locator("[name=otp_token]")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("role-navigation")).to_have_count(0)

    # A password alone does not open the EDC: the home page sends them back to a sign-in step.
    visit("/", "home-refused")
    assert path_of(page) in (LOGIN, TWO_FACTOR)
    expect(page.get_by_test_id("role-navigation")).to_have_count(0)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_each_role_sees_the_navigation_declared_for_it(page, visit, checkpoint, make_user, site_a, role):
    user = make_user(role=role, sites=[site_a])

    visit(LOGIN, "sign-in")
    submit_password(page, checkpoint, user)
    submit_code(page, checkpoint, current_code(user.totpdevice_set.get()), step="home")

    navigation = page.get_by_test_id("role-navigation")
    expect(navigation.get_by_role("link")).to_have_text(expected_navigation(role))
    if role == Role.ADMINISTRATOR:
        expect(navigation.get_by_role("link", name="Users and access")).to_be_visible()
        expect(navigation.get_by_role("link", name="Sites")).to_be_visible()
    else:
        expect(navigation.get_by_role("link", name="Users and access")).to_have_count(0)


def test_sign_in_with_a_backup_code_which_then_cannot_be_used_again(page, visit, checkpoint, make_user):
    user = make_user(role=Role.INVESTIGATOR)
    backup = StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    code = StaticToken.random_token()
    backup.token_set.create(token=code)
    backup.token_set.create(token=StaticToken.random_token())

    visit(LOGIN, "sign-in")
    submit_password(page, checkpoint, user)
    submit_code(page, checkpoint, code, step="home")
    assert path_of(page) == "/"
    expect(page.get_by_test_id("role-navigation")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"**{LOGIN}*")
    checkpoint("signed-out")
    submit_password(page, checkpoint, user, step="password-again")
    submit_code(page, checkpoint, code, step="used-code-refused")
    assert path_of(page) == TWO_FACTOR
    expect(page.locator("[name=otp_token]")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("role-navigation")).to_have_count(0)


def test_first_sign_in_enrols_an_authenticator_app_and_shows_backup_codes(page, visit, checkpoint, site_a):
    user = UserFactory(totp=False, role=Role.MONITOR, sites=[site_a])

    visit(LOGIN, "sign-in")
    submit_password(page, checkpoint, user, step="enrolment")
    assert path_of(page) == TWO_FACTOR_SETUP

    device = TOTPDevice.objects.get(user=user, confirmed=False)
    expect(page.locator("main svg").first).to_be_visible()  # the QR code, drawn inline
    secret = b32encode(device.bin_key).decode()
    page_text = re.sub(r"\s+", "", page.locator("main").inner_text())
    assert secret.rstrip("=") in page_text, "the secret is shown for typing it in by hand"

    submit_code(page, checkpoint, current_code(device), step="backup-codes")
    device.refresh_from_db()
    assert device.confirmed
    codes = list(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert codes, "backup codes were issued"
    for code in codes:
        expect(page.locator("main")).to_contain_text(code)

    page.get_by_role("link", name="Continue").click()
    page.wait_for_url(re.compile(r"^https?://[^/]+/$"))
    checkpoint("home")
    expect(page.get_by_test_id("role-navigation")).to_be_visible()


def test_repeated_failed_sign_ins_lock_the_account_even_for_the_right_password(
    page, visit, checkpoint, make_user
):
    user = make_user(role=Role.DATA_MANAGER)
    limit = settings.AXES_FAILURE_LIMIT

    visit(LOGIN, "sign-in")
    for attempt in range(1, limit):
        response = submit_password(
            page, checkpoint, user, password="not my password", step=f"failure-{attempt}"
        )
        assert response.status == 200
        assert path_of(page) == LOGIN
        expect(page.get_by_role("heading", name=re.compile("Account locked"))).to_have_count(0)

    response = submit_password(page, checkpoint, user, password="not my password", step="locked")
    assert response.status == 403
    expect(page.get_by_role("heading", name=re.compile("Account locked"))).to_be_visible()

    visit(LOGIN, "sign-in-again")
    response = submit_password(page, checkpoint, user, step="right-password-still-locked")
    assert response.status == 403
    expect(page.get_by_role("heading", name=re.compile("Account locked"))).to_be_visible()
    assert path_of(page) not in (TWO_FACTOR, TWO_FACTOR_SETUP, "/")
