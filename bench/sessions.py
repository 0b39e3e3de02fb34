"""Signed-in sessions for the benchmark's and the load test's staff users, made directly in the
session store: the state Django's login() and django-otp's verification leave behind, without
driving the sign-in form (and its deliberately slow Argon2 check) for every simulated user."""

from __future__ import annotations

from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from trial.accounts.sessions import session_limits_start
from trial.models import Site, User
from trial.sites import SESSION_KEY as SITE_SESSION_KEY

MODEL_BACKEND = "trial.accounts.backends.UserWithPermissionsBackend"


def _confirmed_device(user: User) -> Device:
    for device_model in ("otp_totp.TOTPDevice", "otp_static.StaticDevice"):
        device = apps.get_model(device_model).objects.filter(user=user, confirmed=True).first()
        if device is not None:
            return device
    raise LookupError(f"{user.email} has no confirmed second factor")


def staff_session_cookie(user: User, site: Site | None = None) -> dict[str, str]:
    """Cookies of a session in which `user` signed in with both factors and chose `site`."""
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = user._meta.pk.value_to_string(user)
    store[BACKEND_SESSION_KEY] = MODEL_BACKEND
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store[DEVICE_ID_SESSION_KEY] = _confirmed_device(user).persistent_id
    if site is not None:
        store[SITE_SESSION_KEY] = site.pk
    session_limits_start(store)
    store.create()
    return {settings.SESSION_COOKIE_NAME: store.session_key}
