"""Celery tasks of the trial app. Each takes ids or plain strings and calls one service; it
retries with back-off while the mail server is unreachable, and a task run twice (a retry, a
redelivery) at worst sends its e-mail twice to the same people."""

from __future__ import annotations

from smtplib import SMTPException

from trial.accounts import lockout, password_reset
from trial.celery import app

# A mail server that is down or refusing: try again later (1 s, 2 s, 4 s ... up to 10 minutes).
MAIL_RETRY = {
    "autoretry_for": (SMTPException, OSError),
    "retry_backoff": True,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
    "soft_time_limit": 60,
    "time_limit": 90,
}


@app.task(bind=True, **MAIL_RETRY)
def lockout_notify_administrators(self, username: str, ip_address: str, locked_at: str) -> int:
    """E-mail the administrators that sign-in for `username` was locked at `locked_at` (ISO 8601)."""
    return lockout.lockout_notify_administrators(
        username=username, ip_address=ip_address, locked_at=locked_at
    )


@app.task(bind=True, **MAIL_RETRY)
def password_reset_email_send(self, user_id: int) -> bool:
    """E-mail user `user_id` a link to set a new password (nothing if they cannot sign in)."""
    return password_reset.password_reset_email_send(user_id=user_id)
