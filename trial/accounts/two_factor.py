"""Two-factor sign-in (django-otp): an authenticator app (TOTP, RFC 6238) plus one-use backup codes.

Every user is staff and handles trial data, so every signed-in user must pass a second factor
before any page but the two-factor pages themselves (RequireTwoFactorMiddleware).
"""

from __future__ import annotations

import math
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import segno
from django.conf import settings
from django.db import transaction
from django.http import HttpResponseRedirect, QueryDict
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

TOTP_DEVICE_NAME = "Authenticator app"
BACKUP_DEVICE_NAME = "Backup codes"
BACKUP_CODE_COUNT = 10


class VerificationThrottled(Exception):
    """Too many wrong codes in a row: django-otp refuses to check another one until `retry_at`."""

    def __init__(self, retry_at: datetime | None):
        super().__init__(retry_at)
        self.retry_at = retry_at

    @property
    def message(self) -> str:
        seconds = 1
        if self.retry_at is not None:
            seconds = max(1, math.ceil((self.retry_at - timezone.now()).total_seconds()))
        return ngettext(
            "Too many wrong codes. Wait %(seconds)d second, then try again.",
            "Too many wrong codes. Wait %(seconds)d seconds, then try again.",
            seconds,
        ) % {"seconds": seconds}


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    backup_codes: list[str]


def has_confirmed_totp_device(user) -> bool:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def totp_device_for_setup(*, user) -> TOTPDevice:
    """The user's unconfirmed authenticator device, created on first use. Reusing it means a
    reload of the setup page shows the same QR code the user may already have scanned."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def totp_secret(device: TOTPDevice) -> str:
    """The device's key in base32, the form authenticator apps accept for manual entry."""
    return b32encode(device.bin_key).decode("ascii")


def totp_qr_svg(device: TOTPDevice) -> SafeString:
    """An inline SVG QR code of the device's otpauth:// URL: no image request leaves the page,
    so the secret never appears in a URL, a log or a third party's server."""
    svg = segno.make(device.config_url, error="m").svg_inline(scale=4, dark="#000", light="#fff")
    label = format_html('<svg role="img" aria-label="{}" ', _("QR code for your authenticator app"))
    # segno's output contains only our own URL, encoded as path data.
    return mark_safe(svg.replace("<svg ", label, 1))  # noqa: S308


def _throttle_check(device: Device) -> None:
    allowed, extra = device.verify_is_allowed()
    if not allowed:
        raise VerificationThrottled((extra or {}).get("locked_until"))


def otp_token_verify(*, user, token: str) -> Device | None:
    """Check `token` against the user's confirmed devices; the device that accepted it, or None.

    A code of digits only, as long as an authenticator code, goes to the authenticator app;
    anything else to the backup codes (which are consumed when used). Choosing one kind of device
    means a mistyped app code does not count against, and throttle, the backup codes.

    Raises VerificationThrottled while django-otp's back-off after wrong codes lasts.
    """
    token = "".join(token.split())
    with transaction.atomic():
        totp_devices = list(TOTPDevice.objects.devices_for_user(user, confirmed=True).select_for_update())
        if token.isdigit() and any(len(token) == device.digits for device in totp_devices):
            candidates: list[Device] = [d for d in totp_devices if d.digits == len(token)]
            token_to_check = token
        else:
            candidates = list(StaticDevice.objects.devices_for_user(user, confirmed=True).select_for_update())
            token_to_check = token.lower()
        for device in candidates:
            _throttle_check(device)
        for device in candidates:
            if device.verify_token(token_to_check):
                return device
    return None


def backup_codes_issue(*, user) -> list[str]:
    """Replace the user's backup codes with BACKUP_CODE_COUNT new ones and return them; they are
    shown once, right after enrolment."""
    device, _created = StaticDevice.objects.get_or_create(
        user=user, name=BACKUP_DEVICE_NAME, defaults={"confirmed": True}
    )
    if not device.confirmed:
        device.confirmed = True
        device.save(update_fields=["confirmed"])
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(BACKUP_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def backup_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def totp_device_confirm(*, user, token: str) -> Enrolment | None:
    """Enrol the authenticator app shown on the setup page if `token` is a current code from it:
    confirm the device, drop other unconfirmed ones, and issue new backup codes.

    Returns None for a wrong code (which counts towards django-otp's throttling).
    Raises VerificationThrottled while the back-off after wrong codes lasts.
    """
    token = "".join(token.split())
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("-pk").first()
        )
        if device is None:
            return None
        _throttle_check(device)
        if not device.verify_token(token):
            enrolment = None
        else:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            enrolment = Enrolment(device=device, backup_codes=backup_codes_issue(user=user))
    return enrolment


def url_with_next(url: str, next_url: str) -> str:
    """`url?next=...`, encoded the way Django's redirect_to_login does it."""
    if not next_url:
        return url
    query = QueryDict(mutable=True)
    query["next"] = next_url
    return f"{url}?{query.urlencode(safe='/')}"


def two_factor_url(user, next_url: str = "") -> str:
    """Where a user who has passed the password must go next: verify, or set up an app first."""
    url = reverse("two-factor-verify" if has_confirmed_totp_device(user) else "two-factor-setup")
    return url_with_next(url, next_url)


def next_url_for(request) -> str:
    """The page to come back to after signing in again: the requested page for GET; for a form
    submission (which cannot be replayed) the page the form was on, if it is one of ours."""
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(referer, {request.get_host()}, request.is_secure()):
        parts = urlsplit(referer)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return ""


class RequireTwoFactorMiddleware:
    """Send every signed-in user who has not passed the second factor to verify it (or to set up
    an authenticator app if they have none), keeping the page they asked for in `next`.

    Anonymous requests are left to LoginRequiredMiddleware. Let through unverified: the two-factor
    pages, sign-out, static files and /healthz.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated and not user.is_verified() and not self._exempt(request.path):
            return HttpResponseRedirect(two_factor_url(user, next_url_for(request)))
        return self.get_response(request)

    @staticmethod
    def _exempt(path: str) -> bool:
        if settings.STATIC_URL and path.startswith(settings.STATIC_URL):
            return True
        return path in {
            reverse("two-factor-verify"),
            reverse("two-factor-setup"),
            reverse("logout"),
            reverse("healthz"),
            reverse("healthz-web"),
        }
