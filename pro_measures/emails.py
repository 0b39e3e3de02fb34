"""E-mails to patients (questionnaire links, visit reminders) and the coordinators' digest.

Patient e-mails name the study, never the diagnosis, carry no identifiers beyond the greeting-free
text, and are written in the participant's language; links hold only the opaque token.
`connection` is the mail backend to send with: the reminder tick passes one per batch, so a batch
is one SMTP conversation; None opens one per message.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from participants.models import Visit
from pro_measures.models import Invitation, ReminderKind
from trial.models import Site, User
from trial.roles import Role, definition_for


def questionnaire_url(token: str) -> str:
    return settings.SITE_URL.rstrip("/") + reverse("pro_measures:questionnaire", args=[token])


def _headers(message_id: str) -> dict[str, str]:
    """A reminder's e-mail carries the reminder's own Message-ID (stable across a re-send)."""
    return {"Message-ID": message_id} if message_id else {}


def invitation_send(
    *, invitation: Invitation, token: str, kind: str, message_id: str = "", connection=None
) -> None:
    participant = invitation.participant
    site = participant.site
    with translation.override(participant.preferred_language):
        context = {
            "study_name": settings.STUDY_NAME,
            "url": questionnaire_url(token),
            "valid_until": timezone.localtime(invitation.valid_until, participant.zone),
            "is_reminder": kind != ReminderKind.INVITATION,
            "is_last_call": kind == ReminderKind.LAST_CALL,
            "site": site,
        }
        subject = (
            _("%(study)s: a short questionnaire is waiting for you")
            if kind == ReminderKind.INVITATION
            else _("%(study)s: reminder - your questionnaire is still open")
        ) % {"study": settings.STUDY_NAME}
        text = render_to_string("pro_measures/email/invitation.txt", context)
        html = render_to_string("pro_measures/email/invitation.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        to=[participant.email],
        headers=_headers(message_id),
        connection=connection,
    )
    message.attach_alternative(html, "text/html")
    message.send()


def visit_reminder_send(*, visit: Visit, message_id: str = "", connection=None) -> None:
    participant = visit.participant
    with translation.override(participant.preferred_language):
        context = {"study_name": settings.STUDY_NAME, "visit": visit, "site": participant.site}
        subject = _("%(study)s: your study visit on %(date)s") % {
            "study": settings.STUDY_NAME,
            "date": visit.target_date.isoformat(),
        }
        text = render_to_string("pro_measures/email/visit_reminder.txt", context)
    EmailMessage(
        subject, text, to=[participant.email], headers=_headers(message_id), connection=connection
    ).send()


def coordinator_digest_send(*, site: Site, now: dt.datetime, message_id: str = "", connection=None) -> int:
    """The daily digest of overdue visits and open questionnaires closing soon, to the site's
    coordinators. Returns the number of recipients (none when there is nothing to report)."""
    today = timezone.localtime(now, site.zone).date()
    overdue = list(
        Visit.objects.overdue_on(today)
        .filter(participant__site=site, participant__status="on_study")
        .select_related("participant")
        .order_by("window_closes")
    )
    closing = list(
        Invitation.objects.answerable(now=now)
        .filter(participant__site=site, valid_until__lte=now + dt.timedelta(days=3))
        .select_related("participant", "visit")
        .order_by("valid_until")
    )
    if not overdue and not closing:
        return 0
    group = definition_for(Role.COORDINATOR).group_name
    recipients = list(
        User.objects.filter(is_active=True, groups__name=group, memberships__site=site)
        .values_list("email", flat=True)
        .distinct()
    )
    if not recipients:
        return 0
    context = {
        "site": site,
        "today": today,
        "overdue": overdue,
        "closing": closing,
        "study_name": settings.STUDY_NAME,
        "today_url": settings.SITE_URL.rstrip("/") + reverse("participants:today"),
    }
    text = render_to_string("pro_measures/email/digest.txt", context)
    subject = _("%(study)s: %(site)s daily digest (%(n)s overdue visits, %(m)s questionnaires closing)") % {
        "study": settings.STUDY_NAME,
        "site": site.code,
        "n": len(overdue),
        "m": len(closing),
    }
    EmailMessage(subject, text, to=recipients, headers=_headers(message_id), connection=connection).send()
    return len(recipients)
