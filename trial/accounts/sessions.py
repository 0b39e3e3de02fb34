"""Session limits: sign out after SESSION_IDLE_TIMEOUT without a request, and in any case
SESSION_ABSOLUTE_TIMEOUT after signing in (21 CFR 11.300(d); NIST SP 800-63B section 7.1)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.signals import user_logged_in
from django.contrib.messages.storage import default_storage
from django.dispatch import receiver
from django.http import HttpResponseRedirect
from django.shortcuts import resolve_url
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from trial.accounts.two_factor import next_url_for, url_with_next

SIGNED_IN_AT = "limits_signed_in_at"  # POSIX seconds, JSON-serialisable
LAST_REQUEST_AT = "limits_last_request_at"
# The time of the last request is saved at most this often, so that an active user does not
# cost a session write on every page; the idle timeout is exact to within this.
LAST_REQUEST_RESOLUTION = timedelta(minutes=1)


def duration_text(duration: timedelta) -> str:
    """'30 minutes', '12 hours', '3 days': a setting's duration in words for messages."""
    minutes = round(duration.total_seconds() / 60)
    if minutes and minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return ngettext("%(count)d day", "%(count)d days", days) % {"count": days}
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}


def session_limits_start(session) -> None:
    now = timezone.now().timestamp()
    session[SIGNED_IN_AT] = now
    session[LAST_REQUEST_AT] = now


# A signal, so that every way of signing in starts the clock afresh (our login page, the admin's,
# the test client's force_login) even when login() keeps the session's data.
@receiver(user_logged_in, dispatch_uid="trial.accounts.sessions.start")
def _start_on_sign_in(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        session_limits_start(request.session)


class SessionLimitsMiddleware:
    """Sign out a session that was idle too long or is older than the absolute limit, and send
    the user to the sign-in page with a message saying why and `next` set to where they were."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            expired_message = self._check(request.session)
            if expired_message:
                return self._sign_out(request, expired_message)
        return self.get_response(request)

    @staticmethod
    def _check(session) -> str | None:
        """The message to sign out with, or None after recording this request."""
        now = timezone.now().timestamp()
        signed_in_at = session.get(SIGNED_IN_AT)
        last_request_at = session.get(LAST_REQUEST_AT)
        if signed_in_at is None or last_request_at is None:
            # A session from before these limits, or one the sign-in signal did not see.
            session_limits_start(session)
            return None
        idle = settings.SESSION_IDLE_TIMEOUT
        absolute = settings.SESSION_ABSOLUTE_TIMEOUT
        if now - last_request_at > idle.total_seconds():
            return _("You were signed out after %(duration)s without activity.") % {
                "duration": duration_text(idle)
            }
        if now - signed_in_at > absolute.total_seconds():
            return _("You were signed out after %(duration)s; please sign in again.") % {
                "duration": duration_text(absolute)
            }
        if now - last_request_at >= LAST_REQUEST_RESOLUTION.total_seconds():
            session[LAST_REQUEST_AT] = now
        return None

    @staticmethod
    def _sign_out(request, message: str) -> HttpResponseRedirect:
        next_url = next_url_for(request)
        logout(request)
        response = HttpResponseRedirect(url_with_next(resolve_url(settings.LOGIN_URL), next_url))
        # MessageMiddleware comes later in MIDDLEWARE and does not run for this response, so the
        # message is stored here the way it would store it (a cookie, or the new session).
        storage = default_storage(request)
        storage.add(messages.WARNING, message)
        storage.update(response)
        return response
