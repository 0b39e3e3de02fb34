"""Safety workflows: pregnancy tests, adverse events (with the serious-AE alert), AE review at
each visit, and protocol deviations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import (
    AdverseEvent,
    AEReview,
    Participant,
    PregnancyTest,
    ProtocolDeviation,
    Visit,
)
from participants.visits import site_today, visit_records_changed
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, reason_required
from trial.concurrency import EditConflict, save_if_unchanged
from trial.locks import require_unlocked
from trial.models import Site, User
from trial.roles import Role, definition_for

AE_FIELDS = (
    "term_code",
    "term_text",
    "ctcae_version",
    "grade",
    "serious",
    "seriousness_criteria",
    "related_to_sts",
    "related_to_procedure",
    "expected",
    "onset_date",
    "resolution_date",
    "outcome",
    "action_taken",
    "description",
    "reported_at_visit",
)


@transaction.atomic
def pregnancy_test_record(
    *,
    actor: User | None,
    participant: Participant,
    test_type: str,
    test_date: dt.date,
    result: str,
    visit: Visit | None = None,
) -> PregnancyTest:
    require_site_permission(actor, "participants.add_pregnancytest", participant.site)
    require_unlocked(visit=visit, participant=participant)
    if test_date > site_today(participant.site):
        raise ValidationError({"test_date": _("The test date cannot be in the future.")})
    if visit is not None and visit.participant_id != participant.pk:
        raise ValidationError(_("That visit belongs to another participant."))
    test = PregnancyTest(
        participant=participant, visit=visit, test_type=test_type, test_date=test_date, result=result
    )
    test.full_clean()
    with audit_context(reason="pregnancy test recorded", **actor_metadata(actor)):
        test.save()
    visit_records_changed(test.visit_id)
    return test


def _enqueue_sae_alert(event: AdverseEvent) -> None:
    if event.serious and event.investigators_notified_at is None:
        from participants.tasks import serious_adverse_event_notify

        transaction.on_commit(lambda: serious_adverse_event_notify.delay(event.pk))


@transaction.atomic
def adverse_event_record(*, actor: User, participant: Participant, values: dict[str, Any]) -> AdverseEvent:
    """Record an adverse event. A serious one alerts the site's investigators by e-mail as soon as
    the record is committed (a Celery task, sent once)."""
    require_site_permission(actor, "participants.add_adverseevent", participant.site)
    require_unlocked(visit=values.get("reported_at_visit"), participant=participant)
    unknown = set(values) - set(AE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    event = AdverseEvent(participant=participant, reported_by=actor, **values)
    if event.reported_at_visit is not None and event.reported_at_visit.participant_id != participant.pk:
        raise ValidationError(_("That visit belongs to another participant."))
    event.full_clean()
    with audit_context(reason="adverse event reported", **actor_metadata(actor)):
        event.save()
    _enqueue_sae_alert(event)
    visit_records_changed(event.reported_at_visit_id)
    return event


@transaction.atomic
def adverse_event_update(
    *, actor: User, event: AdverseEvent, values: dict[str, Any], reason: str, expected_version: int
) -> AdverseEvent:
    """Follow-up of an adverse event (outcome, resolution, upgrade to serious): needs a reason and
    the version the user opened; becoming serious alerts the investigators."""
    require_site_permission(actor, "participants.change_adverseevent", event.participant.site)
    require_unlocked(visit=event.reported_at_visit, participant=event.participant)
    if values.get("reported_at_visit") is not None:
        require_unlocked(visit=values["reported_at_visit"])
    reason = reason_required(reason)
    unknown = set(values) - set(AE_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    visit = values.get("reported_at_visit")
    if visit is not None and visit.participant_id != event.participant_id:
        raise ValidationError({"reported_at_visit": _("That visit belongs to another participant.")})
    changed = [name for name, value in values.items() if getattr(event, name) != value]
    if not changed:
        return event
    reported_at_before = event.reported_at_visit_id
    for name in changed:
        setattr(event, name, values[name])
    event.full_clean()
    with audit_context(reason=reason, **actor_metadata(actor)):
        save_if_unchanged(event, expected_version=expected_version, fields=changed)
    _enqueue_sae_alert(event)
    visit_records_changed(reported_at_before, event.reported_at_visit_id)
    return event


def investigators_of(site: Site) -> list[User]:
    group = definition_for(Role.INVESTIGATOR).group_name
    return list(
        User.objects.filter(is_active=True, groups__name=group, memberships__site=site)
        .distinct()
        .order_by("email")
    )


@transaction.atomic
def serious_adverse_event_notify(*, adverse_event_id: int) -> int:
    """E-mail the site's investigators about a serious adverse event, once: the row is locked and
    stamped, so a second run (retry, redelivery, a later edit) sends nothing. Returns e-mails sent."""
    event = (
        AdverseEvent.objects.select_for_update(of=("self",))
        .select_related("participant__site")
        .filter(pk=adverse_event_id)
        .first()
    )
    if event is None or not event.serious or event.investigators_notified_at is not None:
        return 0
    site = event.participant.site
    recipients = [user.email for user in investigators_of(site)]
    if recipients:
        url = settings.SITE_URL + reverse("participants:adverse-event-detail", args=[event.pk])
        criteria = ", ".join(
            str(dict(event._meta.get_field("seriousness_criteria").base_field.choices)[c])
            for c in event.seriousness_criteria
        )
        # No direct identifiers in e-mail: the study id and the event only.
        send_mail(
            subject=_("[%(study)s] Serious adverse event: %(study_id)s")
            % {"study": settings.STUDY_NAME, "study_id": event.participant.study_id},
            message=_(
                "A serious adverse event was reported at site %(site)s.\n\n"
                "Participant: %(study_id)s\nEvent: %(term)s\nCTCAE grade: %(grade)s (%(ctcae)s)\n"
                "Seriousness: %(criteria)s\nOnset: %(onset)s\n\nReview it: %(url)s\n"
            )
            % {
                "site": site.code,
                "study_id": event.participant.study_id,
                "term": event.term,
                "grade": event.grade,
                "ctcae": event.get_ctcae_version_display(),
                "criteria": criteria,
                "onset": event.onset_date,
                "url": url,
            },
            from_email=None,
            recipient_list=recipients,
        )
    with audit_context(reason="investigators notified of a serious adverse event"):
        event.investigators_notified_at = timezone.now()
        event.save(update_fields=["investigators_notified_at"])
    return len(recipients)


@transaction.atomic
def ae_review_record(
    *, actor: User, visit: Visit, new_events: bool, reason: str = "", expected_version: int | None = None
) -> AEReview:
    """Record the AE review of a visit; changing a saved answer needs a reason (21 CFR 11.10(e)).

    `expected_version` is the version of the saved review the user opened, None if there was none:
    a review saved by someone else since then raises `EditConflict` and nothing is written."""
    require_site_permission(actor, "participants.add_aereview", visit.participant.site)
    require_unlocked(visit=visit)
    review = AEReview.objects.filter(visit=visit).first()
    if review is None and expected_version is None:
        try:
            with (
                transaction.atomic(),
                audit_context(reason="adverse event review recorded", **actor_metadata(actor)),
            ):
                review = AEReview.objects.create(visit=visit, new_events=new_events, reviewed_by=actor)
        except IntegrityError:  # the other person's first review was committed a moment before
            raise EditConflict() from None
        visit_records_changed(visit.pk)
        return review
    if review is None or review.row_version != expected_version:
        raise EditConflict()
    if review.new_events != new_events:
        reason = reason_required(reason)
        review.new_events, review.reviewed_by = new_events, actor
        with audit_context(reason=reason, **actor_metadata(actor)):
            save_if_unchanged(review, expected_version=expected_version, fields=["new_events", "reviewed_by"])
    visit_records_changed(visit.pk)
    return review


@transaction.atomic
def deviation_record(
    *,
    actor: User,
    site: Site,
    occurred_on: dt.date,
    category: str,
    description: str,
    corrective_action: str = "",
    participant: Participant | None = None,
) -> ProtocolDeviation:
    require_site_permission(actor, "participants.add_protocoldeviation", site)
    require_unlocked(participant=participant)
    if participant is not None and participant.site_id != site.pk:
        raise ValidationError(_("That participant belongs to another site."))
    if occurred_on > site_today(site):
        raise ValidationError({"occurred_on": _("The date cannot be in the future.")})
    deviation = ProtocolDeviation(
        site=site,
        participant=participant,
        occurred_on=occurred_on,
        category=category,
        description=description.strip(),
        corrective_action=corrective_action.strip(),
        reported_by=actor,
    )
    deviation.full_clean()
    with audit_context(reason="protocol deviation reported", **actor_metadata(actor)):
        deviation.save()
    return deviation
