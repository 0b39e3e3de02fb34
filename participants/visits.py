"""Visit workflows: plan the schedule at enrolment, complete or miss a visit, add an unscheduled
visit, and the coordinator's "today" list. Dates are the site's local dates."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Participant, ParticipantStatus, Visit, VisitStatus
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, reason_required
from trial.locks import require_unlocked
from trial.models import Site, User
from trial.protocol import PROTOCOL, VisitDefinition


def site_today(site: Site, *, now: dt.datetime | None = None) -> dt.date:
    """Today's date at the site (a visit 'today' in Tokyo may be yesterday in New York)."""
    return timezone.localtime(now or timezone.now(), site.zone).date()


def planned_visit(
    *, participant: Participant, definition: VisitDefinition, number: int, baseline: dt.date
) -> Visit:
    """The unsaved visit `definition` of the schedule (the `number`th, from 1), planned from a baseline."""
    opens, target, closes = definition.window(baseline)
    return Visit(
        participant=participant,
        code=definition.code,
        definition_code=definition.code,
        name=str(definition.name),
        sequence=number * 10,
        protocol_version=PROTOCOL.version,
        target_date=target,
        window_opens=opens,
        window_closes=closes,
    )


def visits_plan(*, participant: Participant, baseline: dt.date) -> list[Visit]:
    """Plan every scheduled visit of the protocol from a baseline date (called at enrolment)."""
    visits = [
        planned_visit(participant=participant, definition=definition, number=number, baseline=baseline)
        for number, definition in enumerate(PROTOCOL.planned_visits, start=1)
    ]
    return Visit.objects.bulk_create(visits)


def _replan_from_baseline(participant: Participant, baseline: dt.date) -> None:
    """Day 0 is the actual baseline: re-plan the visits not yet done from it."""
    for visit in participant.visits.select_for_update().filter(status=VisitStatus.PLANNED):
        definition = visit.definition
        if visit.is_unscheduled:
            continue
        opens, target, closes = definition.window(baseline)
        if (visit.window_opens, visit.target_date, visit.window_closes) != (opens, target, closes):
            visit.window_opens, visit.target_date, visit.window_closes = opens, target, closes
            visit.save(update_fields=["window_opens", "target_date", "window_closes"])


@transaction.atomic
def visit_complete(*, actor: User | None, visit: Visit, visit_date: dt.date) -> Visit:
    """Mark a visit done on a date. Completing the baseline re-plans the rest from its date."""
    participant = visit.participant
    require_site_permission(actor, "participants.change_participant", participant.site)
    require_unlocked(visit=visit)
    locked = Visit.objects.select_for_update().get(pk=visit.pk)
    if locked.status != VisitStatus.PLANNED:
        raise ValidationError(
            _("This visit is already %(status)s.") % {"status": locked.get_status_display()}
        )
    if participant.status != ParticipantStatus.ON_STUDY:
        raise ValidationError(_("The participant is no longer on study."))
    if visit_date < participant.enrolled_on:
        raise ValidationError({"visit_date": _("The visit date cannot be before enrolment.")})
    if visit_date > site_today(participant.site):
        raise ValidationError({"visit_date": _("The visit date cannot be in the future.")})
    with audit_context(reason="visit completed", **actor_metadata(actor)):
        locked.status = VisitStatus.COMPLETED
        locked.visit_date = visit_date
        locked.completed_at = timezone.now()
        locked.completed_by = actor
        locked.save()
        if locked.definition_code == PROTOCOL.planned_visits[0].code:
            _replan_from_baseline(participant, visit_date)
    # The visit report is the read side's (trial.reports): announced by task name after commit
    # (best effort: its minute tick makes any report a broker outage missed).
    from participants.services import _announce

    _announce("reports.tasks.visit_report_generate", locked.pk)
    return locked


def visit_records_changed(*visit_ids: int | None) -> None:
    """Announce after commit that records of these visits changed: the read side (trial.reports)
    re-checks their signatures and makes a new report version of a completed visit within seconds,
    instead of at its minute tick (which stays the safety net). Called by every service that edits
    a visit's records; by task name, since domain apps never import the read side."""
    from participants.services import _announce

    for visit_id in sorted({pk for pk in visit_ids if pk}):
        _announce("reports.tasks.visit_report_generate", visit_id, "changed")


@transaction.atomic
def visit_miss(*, actor: User | None, visit: Visit, reason: str) -> Visit:
    require_site_permission(actor, "participants.change_participant", visit.participant.site)
    require_unlocked(visit=visit)
    reason = reason_required(reason)
    locked = Visit.objects.select_for_update().get(pk=visit.pk)
    if locked.status != VisitStatus.PLANNED:
        raise ValidationError(
            _("This visit is already %(status)s.") % {"status": locked.get_status_display()}
        )
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.status = VisitStatus.MISSED
        locked.missed_reason = reason
        locked.save()
    return locked


@transaction.atomic
def visit_add_unscheduled(
    *, actor: User | None, participant: Participant, visit_date: dt.date, reason: str
) -> Visit:
    require_site_permission(actor, "participants.change_participant", participant.site)
    require_unlocked(participant=participant)
    reason = reason_required(reason)
    if participant.status != ParticipantStatus.ON_STUDY:
        raise ValidationError(_("The participant is no longer on study."))
    definition = PROTOCOL.unscheduled_visit
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    count = locked.visits.filter(definition_code=definition.code).count()
    last_sequence = locked.visits.aggregate(m=Max("sequence"))["m"] or 0
    with audit_context(reason=reason, **actor_metadata(actor)):
        return Visit.objects.create(
            participant=locked,
            code=f"{definition.code}-{count + 1}",
            definition_code=definition.code,
            name=str(definition.name),
            sequence=last_sequence + 1,
            target_date=visit_date,
            window_opens=visit_date,
            window_closes=visit_date,
            unscheduled_reason=reason,
        )


@dataclass(frozen=True)
class TodayList:
    due_today: list[Visit]
    in_window: list[Visit]
    overdue: list[Visit]


def today_list(*, user: User, sites: list[Site] | None = None, now: dt.datetime | None = None) -> TodayList:
    """Visits due today, in window and overdue at the user's sites, each by its site's own date.

    Queries: one, whatever the number of participants or sites."""
    sites = sites if sites is not None else list(Site.objects.visible_to(user).filter(is_active=True))
    if not sites:
        return TodayList([], [], [])
    by_site = Q()
    for site in sites:
        today = site_today(site, now=now)
        by_site |= Q(participant__site=site, window_opens__lte=today)
    visits = list(
        Visit.objects.visible_to(user)
        .planned()
        .filter(by_site, participant__status=ParticipantStatus.ON_STUDY)
        .for_lists()
        .order_by("window_closes", "participant__study_id")
    )
    todays = {site.pk: site_today(site, now=now) for site in sites}
    due_today, in_window, overdue = [], [], []
    for visit in visits:
        today = todays[visit.participant.site_id]
        if visit.window_closes < today:
            overdue.append(visit)
        elif visit.target_date == today:
            due_today.append(visit)
        else:
            in_window.append(visit)
    return TodayList(due_today, in_window, overdue)
