"""Lockout after repeated failed sign-ins (django-axes): the page the user sees, and the e-mail
that tells the administrators.

django-axes counts failures per e-mail address and per browser (address + user agent), see
AXES_LOCKOUT_PARAMETERS; while locked, even the right password is refused.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMessage
from django.db import transaction
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from trial.accounts.sessions import duration_text
from trial.models import User
from trial.roles import Role, definition_for

logger = logging.getLogger(__name__)


def lockout_response(request, response, credentials, *args, **kwargs):
    """AXES_LOCKOUT_CALLABLE: the "Account locked" page (HTTP 403). Called for the attempt that
    locks the account and for every attempt while it stays locked; only the first one tells the
    administrators."""
    username = get_client_username(request, credentials) or ""
    if _locked_by_this_attempt(request, credentials):
        lockout_notify_later(username=username, ip_address=request.axes_ip_address or "")
    cool_off = get_cool_off(request)
    context = {
        "cool_off": duration_text(cool_off) if cool_off else "",
        "failure_limit": get_failure_limit(request, credentials),
        "password_reset_url": reverse("password_reset"),
    }
    return render(request, "accounts/lockout.html", context, status=403)


def _locked_by_this_attempt(request, credentials) -> bool:
    # django-axes sets the failure count only when it records a failure; the attempt that
    # reaches the limit is the one that locks. Later attempts count past it (or are not
    # recorded at all, with AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False).
    failures = getattr(request, "axes_failures_since_start", None)
    return failures is not None and failures == get_failure_limit(request, credentials)


def lockout_notify_later(*, username: str, ip_address: str) -> None:
    """Queue the e-mail to the administrators once the current transaction commits."""
    from trial import tasks  # trial.tasks imports this module

    locked_at = timezone.now().isoformat()
    # robust: a broker that is down must not turn the lockout page into an error page.
    transaction.on_commit(
        lambda: tasks.lockout_notify_administrators.delay(
            username=username, ip_address=ip_address, locked_at=locked_at
        ),
        robust=True,
    )


def administrator_emails() -> list[str]:
    group_name = definition_for(Role.ADMINISTRATOR).group_name
    return list(
        User.objects.filter(is_active=True, groups__name=group_name)
        .order_by("email")
        .values_list("email", flat=True)
        .distinct()
    )


def lockout_notify_administrators(*, username: str, ip_address: str, locked_at: str) -> int:
    """E-mail every active administrator that sign-in for `username` is locked, from which
    client address, and how to unlock it. One message to all of them, so that a retry after a
    mail server error cannot send some of them two. Returns the number of recipients."""
    recipients = administrator_emails()
    if not recipients:
        logger.warning("Sign-in for %s locked, but there is no active administrator to tell.", username)
        return 0
    sent_this_hour = _count_lockout_email(locked_at)
    limit = settings.LOCKOUT_EMAILS_PER_HOUR
    if sent_this_hour > limit:
        if sent_this_hour == limit + 1:
            _lockouts_over_limit_send(recipients, locked_at)
        logger.warning(
            "Sign-in for %s locked; over %s lockout e-mails this hour, none sent.", username, limit
        )
        return 0
    account = User.objects.filter(email__iexact=username).first() if username else None
    cool_off = get_cool_off()
    context = {
        "username": username,
        "account": account,
        "ip_address": ip_address,
        "locked_at": datetime.fromisoformat(locked_at).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "cool_off": duration_text(cool_off) if cool_off else "",
        "study_name": settings.STUDY_NAME,
        "site_url": settings.SITE_URL,
    }
    subject = _("[%(study)s] Account locked: %(username)s") % {
        "study": settings.STUDY_NAME,
        # What was typed as the e-mail address: one line, so it cannot add mail headers.
        "username": " ".join(username.split()),
    }
    body = render_to_string("accounts/lockout_email.txt", context)
    EmailMessage(subject=subject, body=body, to=recipients).send()
    return len(recipients)


def _count_lockout_email(locked_at: str) -> int:
    """Count a lockout e-mail in the hour it happened (the hour of `locked_at`, so a retried task
    counts in the same hour). Redis INCR is atomic across workers."""
    key = "accounts:lockout-emails:" + datetime.fromisoformat(locked_at).astimezone(UTC).strftime("%Y%m%d%H")
    cache.add(key, 0, timeout=2 * 3600)
    return cache.incr(key)


def _lockouts_over_limit_send(recipients: list[str], locked_at: str) -> None:
    hour = datetime.fromisoformat(locked_at).astimezone(UTC).strftime("%Y-%m-%d %H:00 UTC")
    subject = _("[%(study)s] Many accounts locked") % {"study": settings.STUDY_NAME}
    body = _(
        "More than %(limit)s sign-in lockouts happened in the hour from %(hour)s: this may be an attack.\n"
        "No further lockout e-mails are sent for that hour. Every lockout is in the access log:\n"
        "%(url)s\n"
    ) % {
        "limit": settings.LOCKOUT_EMAILS_PER_HOUR,
        "hour": hour,
        "url": settings.SITE_URL.rstrip("/") + reverse("access-log"),
    }
    EmailMessage(subject=subject, body=body, to=recipients).send()
