"""Visit workflows: plan the schedule at enrolment, complete or miss a visit, add an unscheduled
visit, and the coordinator's "today" list. Dates are the site's local dates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
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
    """The coordinator's today list: each section an ordered QuerySet of planned visits, to be
    read a page at a time, and the number of visits in each (`counts`, keyed by section name)."""

    due_today: QuerySet[Visit]
    in_window: QuerySet[Visit]
    overdue: QuerySet[Visit]
    counts: dict[str, int]
    todays: dict[int, dt.date]  # each site's own date, by site id

    SECTIONS = ("due_today", "in_window", "overdue")


def today_list(*, user: User, sites: list[Site] | None = None, now: dt.datetime | None = None) -> TodayList:
    """Visits due today (target date today), in window (open, target date not today) and overdue
    (window closed, still planned) at the user's sites, each judged on its site's own date.

    Queries: the user's sites when `sites` is not given, then one that counts all three
    sections; each section's QuerySet then reads one page. None of it grows with the number of
    participants or sites."""
    sites = sites if sites is not None else list(Site.objects.visible_to(user).filter(is_active=True))
    todays = {site.pk: site_today(site, now=now) for site in sites}
    if not sites:
        empty = Visit.objects.none()
        return TodayList(empty, empty, empty, dict.fromkeys(TodayList.SECTIONS, 0), todays)
    # Sites on the same date share one condition (usually all of them).
    sites_by_day: dict[dt.date, list[int]] = {}
    for site_id, day in todays.items():
        sites_by_day.setdefault(day, []).append(site_id)

    def at_each_site(condition: Callable[[dt.date], Q]) -> Q:
        combined = Q()
        for day, site_ids in sites_by_day.items():
            combined |= Q(participant__site__in=site_ids) & condition(day)
        return combined

    conditions = {
        "overdue": at_each_site(lambda day: Q(window_closes__lt=day)),
        # The target date lies inside the window (a constraint): due today is open and not closed.
        "due_today": at_each_site(lambda day: Q(target_date=day)),
        "in_window": at_each_site(
            lambda day: Q(window_opens__lte=day, window_closes__gte=day) & ~Q(target_date=day)
        ),
    }
    # Visibility by site (the same rule as Participant.visible_to): a subquery of a few sites,
    # not of every visible participant (10,000 hashed per query at N = 10,000).
    open_visits = (
        Visit.objects.filter(participant__site__in=Site.objects.visible_to(user))
        .planned()
        .filter(
            at_each_site(lambda day: Q(window_opens__lte=day)), participant__status=ParticipantStatus.ON_STUDY
        )
    )
    counts = open_visits.aggregate(
        **{name: Count("pk", filter=condition) for name, condition in conditions.items()}
    )
    ordered = open_visits.for_lists().order_by("window_closes", "participant__study_id", "pk")
    return TodayList(
        due_today=ordered.filter(conditions["due_today"]),
        in_window=ordered.filter(conditions["in_window"]),
        overdue=ordered.filter(conditions["overdue"]),
        counts=counts,
        todays=todays,
    )
