"""Password reset by e-mail, with Django's PasswordResetView family (trial.accounts.urls).

The e-mail is sent by a Celery task, so the reset page answers just as fast whether or not the
address has an account: the time a mail server takes would tell an attacker which addresses
exist. Only the user's id goes through the broker; the task makes the link itself.

A reset sets the password only: it neither signs the user in nor touches their two-factor
devices, so the next sign-in still asks for the authenticator code.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMessage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from trial.accounts.sessions import duration_text
from trial.models import User


def password_reset_url(user: User) -> str:
    """An absolute link to set a new password. It works once, and only until
    PASSWORD_RESET_TIMEOUT passes or the password changes."""
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.SITE_URL.rstrip("/") + path


def password_reset_email_send(*, user_id: int) -> bool:
    """E-mail the user a password reset link; False if the account cannot sign in with a password
    (deactivated, or no usable password) and nothing was sent."""
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password():
        return False
    context = {
        "user": user,
        "url": password_reset_url(user),
        "valid_for": duration_text(timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT)),
        "study_name": settings.STUDY_NAME,
    }
    subject = " ".join(render_to_string("registration/password_reset_subject.txt", context).split())
    body = render_to_string("registration/password_reset_email.txt", context)
    EmailMessage(subject=subject, body=body, to=[user.email]).send()
    return True
