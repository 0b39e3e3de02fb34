"""Queries: raise, answer, close, re-open; and the automatic checks that raise them.

Every function checks the actor's role and site first (`require_site_permission`), runs in a
transaction and writes inside an audit context, so the query's event table is its history.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from lesions.models import Lesion, UltrasoundMeasurement
from participants.models import Participant, Visit, VisitStatus
from participants.visits import site_today
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, audited_models
from trial.data_management.models import Query, QueryState
from trial.locks import require_unlocked
from trial.models import User
from trial.roles import Role

# Protocol plausibility check: a dimension changing by more than half since the previous visit
# is queried (the same threshold the visit table warns about on entry).
PLAUSIBLE_CHANGE = Decimal("0.5")
MEASURED_DIMENSIONS = ("length_mm", "width_mm", "depth_mm")


def record_participant_and_visit(record: models.Model) -> tuple[Participant, Visit | None]:
    """The participant (and the visit, if any) a clinical record belongs to."""
    if isinstance(record, Participant):
        return record, None
    if isinstance(record, Visit):
        return record.participant, record
    visit = getattr(record, "visit", None) or getattr(record, "reported_at_visit", None)
    participant = getattr(record, "participant", None) or (visit.participant if visit else None)
    if participant is None:
        raise ValidationError(_("Queries can only be raised on a participant's records."))
    return participant, visit


def queryable_models() -> list[type[models.Model]]:
    """Clinical records a query may name: audited models that belong to a participant."""
    return [
        model
        for model in audited_models()
        if model in (Participant, Visit)
        or any(f.name in ("participant", "visit") for f in model._meta.concrete_fields)
    ]


def coordinators_of(site) -> models.QuerySet[User]:
    return User.objects.filter(
        is_active=True, memberships__site=site, groups__name=str(Role.COORDINATOR.label)
    )


@transaction.atomic
def query_raise(
    *,
    actor: User | None,
    record: models.Model,
    field_name: str,
    text: str,
    suggested_value: str = "",
    assignee: User | None = None,
    check_key: str = "",
) -> Query:
    """Raise a query on `field_name` of `record` (blank: the whole record). `actor=None` is an
    automatic check, which names itself in `check_key`."""
    participant, visit = record_participant_and_visit(record)
    require_site_permission(actor, "data_management.raise_query", participant.site)
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": _("Say what needs clarifying.")})
    if field_name:
        try:
            type(record)._meta.get_field(field_name)
        except FieldDoesNotExist:
            raise ValidationError({"field_name": _("This form has no such field.")}) from None
    if assignee is not None and not coordinators_of(participant.site).filter(pk=assignee.pk).exists():
        raise ValidationError({"assignee": _("Assign the query to a coordinator of the participant's site.")})
    with audit_context(reason=_("Query raised"), **actor_metadata(actor)):
        return Query.objects.create(
            participant=participant,
            visit=visit,
            content_type=ContentType.objects.get_for_model(type(record)),
            object_id=record.pk,
            field_name=field_name,
            text=text,
            suggested_value=suggested_value.strip(),
            assignee=assignee,
            raised_by=actor,
            raised_at=timezone.now(),
            check_key=check_key,
        )


def _locked(query: Query) -> Query:
    return (
        Query.objects.select_for_update(of=("self",))
        .select_related("participant__site", "visit")
        .get(pk=query.pk)
    )


@transaction.atomic
def query_answer(*, actor: User, query: Query, answer: str, data_corrected: bool = False) -> Query:
    """The site answers: an explanation, or that the data were corrected (the correction itself
    is made on the record's form, with its own reason for change naming the query)."""
    query = _locked(query)
    require_site_permission(actor, "data_management.answer_query", query.participant.site)
    if query.state != QueryState.OPEN:
        raise ValidationError(_("Only an open query can be answered."))
    if data_corrected:
        # A correction of locked data cannot have been made: say so before recording the claim.
        require_unlocked(visit=query.visit, participant=query.participant)
    answer = (answer or "").strip()
    if not answer:
        raise ValidationError({"answer": _("Write an answer, or say what you corrected.")})
    query.state = QueryState.ANSWERED
    query.answer = answer
    query.data_corrected = data_corrected
    query.answered_by = actor
    query.answered_at = timezone.now()
    with audit_context(reason=_("Query answered"), **actor_metadata(actor)):
        query.save()
    return query


@transaction.atomic
def query_close(*, actor: User, query: Query) -> Query:
    """The monitor accepts the answer (or withdraws an open query)."""
    query = _locked(query)
    require_site_permission(actor, "data_management.raise_query", query.participant.site)
    if query.state == QueryState.CLOSED:
        raise ValidationError(_("This query is already closed."))
    query.state = QueryState.CLOSED
    query.closed_at = timezone.now()
    with audit_context(reason=_("Query closed"), **actor_metadata(actor)):
        query.save()
    return query


@transaction.atomic
def query_reopen(*, actor: User, query: Query, text: str) -> Query:
    """The monitor does not accept the answer: the query is open again, with why appended."""
    query = _locked(query)
    require_site_permission(actor, "data_management.raise_query", query.participant.site)
    if query.state == QueryState.OPEN:
        raise ValidationError(_("This query is already open."))
    text = (text or "").strip()
    if not text:
        raise ValidationError({"text": _("Say why the query is re-opened.")})
    query.text = f"{query.text}\n\n{_('Re-opened')}: {text}"
    query.state = QueryState.OPEN
    query.closed_at = None
    query.reopen_count += 1
    with audit_context(reason=_("Query re-opened: %(why)s") % {"why": text}, **actor_metadata(actor)):
        query.save()
    return query


# --- Automatic checks -------------------------------------------------------------------------


def _raise_once(record: models.Model, *, field_name: str, text: str, check_key: str) -> bool:
    """Raise an automatic query unless this check already raised one about this thing (in any
    state: a query the monitor closed stays closed). The unique constraint settles races."""
    if Query.objects.filter(check_key=check_key).exists():
        return False
    try:
        with transaction.atomic():
            query_raise(actor=None, record=record, field_name=field_name, text=text, check_key=check_key)
    except IntegrityError:
        return False
    return True


def _visits_out_of_window() -> list[tuple]:
    found = []
    visits = (
        Visit.objects.filter(status=VisitStatus.COMPLETED)
        .filter(
            models.Q(visit_date__lt=models.F("window_opens"))
            | models.Q(visit_date__gt=models.F("window_closes"))
        )
        .select_related("participant__site")
    )
    for visit in visits:
        text = _("Visit %(visit)s was done on %(day)s, outside its window %(opens)s – %(closes)s.") % {
            "visit": visit.code,
            "day": visit.visit_date.isoformat(),
            "opens": visit.window_opens.isoformat(),
            "closes": visit.window_closes.isoformat(),
        }
        found.append((visit, "visit_date", text, f"visit-out-of-window:{visit.pk}"))
    return found


def _implausible_changes() -> list[tuple]:
    """Measurements whose length, width or depth changed by more than half since the same
    lesion's previous measured visit. One query, walked in lesion and visit order."""
    found = []
    previous: UltrasoundMeasurement | None = None
    rows = UltrasoundMeasurement.objects.select_related("visit__participant__site", "lesion").order_by(
        "lesion_id", "visit__sequence"
    )
    for measurement in rows:
        if previous is not None and previous.lesion_id == measurement.lesion_id:
            for name in MEASURED_DIMENSIONS:
                old, new = getattr(previous, name), getattr(measurement, name)
                if old and new and abs(new - old) > PLAUSIBLE_CHANGE * old:
                    text = _(
                        "%(lesion)s: %(field)s changed from %(old)s to %(new)s mm since %(visit)s "
                        "(more than 50%%). Please check the source."
                    ) % {
                        "lesion": measurement.lesion.label,
                        "field": UltrasoundMeasurement._meta.get_field(name).verbose_name,
                        "old": old,
                        "new": new,
                        "visit": previous.visit.code,
                    }
                    found.append((measurement, name, text, f"measurement-change:{measurement.pk}:{name}"))
        previous = measurement
    return found


def _missing_measurements(today_for) -> list[tuple]:
    """Completed visits whose window has closed without a measurement of a lesion present on
    the visit day (the protocol measures every present lesion at every visit)."""
    found = []
    visits = list(
        Visit.objects.filter(status=VisitStatus.COMPLETED).select_related("participant__site").order_by("pk")
    )
    measured = set(
        UltrasoundMeasurement.objects.filter(visit__in=visits).values_list("visit_id", "lesion_id")
    )
    lesions_by_participant: dict[int, list[Lesion]] = {}
    for lesion in Lesion.objects.filter(participant__visits__in=visits).distinct():
        lesions_by_participant.setdefault(lesion.participant_id, []).append(lesion)
    for visit in visits:
        if visit.window_closes >= today_for(visit.participant.site):
            continue
        for lesion in lesions_by_participant.get(visit.participant_id, []):
            present = lesion.first_seen_on <= visit.visit_date and (
                lesion.resolved_on is None or lesion.resolved_on > visit.visit_date
            )
            if present and (visit.pk, lesion.pk) not in measured:
                text = _("Visit %(visit)s: no ultrasound measurement of lesion %(lesion)s.") % {
                    "visit": visit.code,
                    "lesion": lesion.label,
                }
                found.append((visit, "", text, f"missing-measurement:{visit.pk}:{lesion.pk}"))
    return found


def auto_queries_raise(*, now: dt.datetime | None = None) -> int:
    """Run every automatic check; raise a query for each new finding. Idempotent: a finding
    already queried (open, answered or closed) is not queried again. Returns how many were raised."""
    today_cache: dict[int, dt.date] = {}

    def today_for(site) -> dt.date:
        if site.pk not in today_cache:
            today_cache[site.pk] = site_today(site, now=now)
        return today_cache[site.pk]

    findings = [*_visits_out_of_window(), *_implausible_changes(), *_missing_measurements(today_for)]
    raised = 0
    with audit_context(actor="automatic checks"):
        for record, field_name, text, key in findings:
            raised += _raise_once(record, field_name=field_name, text=text, check_key=key)
    return raised
