"""Lesion registry, ultrasound measurements and STS injections, with the protocol's safety gates.

Gates (enforced here, whatever the caller): an injection needs ultrasound guidance, a lesion of
the visit's participant, a visit that expects injections, a negative pregnancy test within the
protocol window for a woman of child-bearing potential, the per-lesion volume limit and the
per-session total dose limit (trial.protocol.PROTOCOL.dosing). Edits of saved rows need a reason
and the row version the user started from (optimistic locking).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, Sum
from django.utils.translation import gettext as _

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from participants.models import (
    EligibilityAssessment,
    Participant,
    ParticipantStatus,
    PregnancyTest,
    PregnancyTestResult,
    Visit,
    VisitStatus,
)
from participants.visits import site_today, visit_records_changed
from trial.access import require_site_permission
from trial.audit import actor_metadata, audit_context, reason_required
from trial.concurrency import EditConflict, save_if_unchanged
from trial.locks import require_unlocked, visit_locked
from trial.models import SiteVisibility, User, site_visibility
from trial.prepared_queries import PreparedQuery
from trial.protocol import PROTOCOL, Form

# A change of more than this fraction since the last visit is implausible enough to double-check.
PLAUSIBLE_CHANGE = Decimal("0.5")

MEASUREMENT_FIELDS = (
    "length_mm",
    "width_mm",
    "depth_mm",
    "depth_not_measurable_reason",
    "posterior_shadowing",
    "overlying_ulceration",
    "doppler_signal",
    "operator",
    "device",
)
# Where the numbers came from (issue #6): set by lesions.dicom.services for caliper and
# structured-report values; the visit table leaves them alone (or resets them, _with_provenance).
PROVENANCE_FIELDS = ("source", "dicom_file", "frame_number", "caliper_points")
DIMENSION_FIELDS = ("length_mm", "width_mm", "depth_mm")
INJECTION_FIELDS = (
    "concentration_mg_per_ml",
    "volume_ml",
    "local_anaesthetic_mixed",
    "needle_gauge",
    "ultrasound_guided",
    "immediate_pain",
    "immediate_complications",
    "complication_detail",
)
LESION_FIELDS = (
    "label",
    "anatomical_site",
    "digit",
    "phalanx",
    "laterality",
    "site_detail",
    "is_target",
    "first_seen_on",
    "resolved_on",
)


# --- Lesions -------------------------------------------------------------------------------


@transaction.atomic
def lesion_add(*, actor: User | None, participant: Participant, **values: Any) -> Lesion:
    require_site_permission(actor, "lesions.add_lesion", participant.site)
    require_unlocked(participant=participant)
    unknown = set(values) - set(LESION_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown lesion fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    lesion = Lesion(participant=participant, **values)
    lesion.full_clean()
    with audit_context(reason="lesion added to the registry", **actor_metadata(actor)):
        lesion.save()
    return lesion


@transaction.atomic
def lesion_update(
    *,
    actor: User | None,
    lesion: Lesion,
    data: dict[str, Any],
    reason: str,
    expected_version: int | None = None,
) -> Lesion:
    """Correct a lesion or record that it resolved (it stays in the registry with the date).
    `expected_version` is the row version the user opened (by default that of `lesion` as the
    caller loaded it): a save by someone else since then raises `EditConflict`
    (trial.concurrency) and nothing is written."""
    if expected_version is None:
        expected_version = lesion.row_version
    require_site_permission(actor, "lesions.change_lesion", lesion.participant.site)
    require_unlocked(participant=lesion.participant)
    reason = reason_required(reason)
    unknown = set(data) - set(LESION_FIELDS)
    if unknown:
        raise ValidationError(_("Unknown lesion fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    current = Lesion.objects.get(pk=lesion.pk)
    if current.row_version != expected_version:
        raise EditConflict()
    changed = [name for name, value in data.items() if getattr(current, name) != value]
    for name in changed:
        setattr(current, name, data[name])
    current.full_clean()
    if changed:
        with audit_context(reason=reason, **actor_metadata(actor)):
            save_if_unchanged(current, expected_version=expected_version, fields=changed)
    return current


# --- Measurements and injections at a visit ---------------------------------------------------


@dataclass
class LesionRow:
    """One lesion's row of the visit table: its measurement and/or injection, as entered.

    `*_version` is the row version the form was opened at (None for a new row)."""

    lesion: Lesion
    measurement: dict[str, Any] | None = None
    measurement_version: int | None = None
    injection: dict[str, Any] | None = None
    injection_version: int | None = None


@dataclass
class SaveResult:
    measurements: list[UltrasoundMeasurement] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _visit_day(visit: Visit) -> dt.date:
    return visit.visit_date or site_today(visit.participant.site)


def _check_visit_open(visit: Visit, participant: Participant) -> None:
    if visit.status == VisitStatus.MISSED:
        raise ValidationError(_("This visit was recorded as missed."))
    if participant.status != ParticipantStatus.ON_STUDY and visit.status != VisitStatus.COMPLETED:
        raise ValidationError(_("The participant is no longer on study."))


def pregnancy_gate(participant: Participant, visit_day: dt.date) -> str | None:
    """Why an injection may not be given on `visit_day`, or None. A woman of child-bearing
    potential needs a negative test within the protocol window before the visit. One statement:
    the eligibility's child-bearing flag with whether such tests exist (the participant's
    screening need not be loaded)."""
    days = PROTOCOL.dosing.pregnancy_test_days_before_injection
    earliest = visit_day - dt.timedelta(days=days)
    tests = PregnancyTest.objects.filter(
        participant_id=participant.pk, test_date__gte=earliest, test_date__lte=visit_day
    )
    childbearing_potential, positive, negative = (
        EligibilityAssessment.objects.filter(screening_id=participant.screening_id)
        .values_list(
            "childbearing_potential",
            Exists(tests.filter(result=PregnancyTestResult.POSITIVE)),
            Exists(tests.filter(result=PregnancyTestResult.NEGATIVE)),
        )
        .get()
    )
    if not childbearing_potential:
        return None
    if positive:
        return _("A positive pregnancy test is recorded: no injection may be given.")
    if not negative:
        return _(
            "No injection without a negative pregnancy test taken between %(start)s and %(end)s "
            "(within %(days)s days before the visit) for a woman of child-bearing potential."
        ) % {"start": earliest.isoformat(), "end": visit_day.isoformat(), "days": days}
    return None


def previous_measurement(lesion: Lesion) -> UltrasoundMeasurement | None:
    """The lesion's last earlier measurement as read by `Lesion.objects.with_previous_measurement`:
    an unsaved measurement holding what the table shows and warns about - its dimensions and
    its visit (the code only) - or None."""
    data = getattr(lesion, "previous_measurement", None)
    if data is None:
        return None
    length, width, depth = (None if data[name] is None else Decimal(data[name]) for name in DIMENSION_FIELDS)
    return UltrasoundMeasurement(
        lesion=lesion, visit=Visit(code=data["visit"]), length_mm=length, width_mm=width, depth_mm=depth
    )


def _plausibility_warnings(
    lesion: Lesion, measurement: UltrasoundMeasurement, previous: UltrasoundMeasurement | None
) -> list[str]:
    if previous is None:
        return []
    warnings = []
    for name in ("length_mm", "width_mm", "depth_mm"):
        old, new = getattr(previous, name), getattr(measurement, name)
        if old and new and abs(new - old) > PLAUSIBLE_CHANGE * old:
            label = UltrasoundMeasurement._meta.get_field(name).verbose_name
            warnings.append(
                _(
                    "%(lesion)s: %(field)s changed from %(old)s to %(new)s (more than 50%% since %(visit)s). Please check."
                )
                % {
                    "lesion": lesion.label,
                    "field": label,
                    "old": old,
                    "new": new,
                    "visit": previous.visit.code,
                }
            )
    return warnings


def _with_provenance(values: dict[str, Any], existing: UltrasoundMeasurement | None) -> dict[str, Any]:
    """A dimension typed over in the visit table is a manual value: the caliper points and
    file no longer describe it, so they are dropped rather than left to mislead."""
    if "source" in values or existing is None or existing.source == "manual":
        return values
    if any(name in values and values[name] != getattr(existing, name) for name in DIMENSION_FIELDS):
        return {**values, "source": "manual", "dicom_file": None, "frame_number": None, "caliper_points": {}}
    return values


# What identifies a measurement or injection row; never changed by an edit.
IDENTITY_FIELDS = ("lesion", "visit")


def _write(model, *, existing, version, values, fields, reason, actor, create_kwargs):
    """Create a row, or update it under optimistic locking (edits need a reason).

    The lesion and the visit are not validated again: the caller read both in this transaction
    (the visit under its row lock, the lesion as the participant's), and read the lesion's
    records at the visit under that lock, so a new row's (lesion, visit) is known to be free."""
    if existing is None:
        row = model(**create_kwargs, **values)
        row.full_clean(exclude=IDENTITY_FIELDS)
        row.save()
        return row, True
    changed = [name for name in fields if name in values and getattr(existing, name) != values[name]]
    if not changed:
        return existing, False
    reason_required(reason)
    if version is None:
        raise ValidationError(_("This row was saved by someone else meanwhile; reload and check it."))
    for name in changed:
        setattr(existing, name, values[name])
    existing.full_clean(exclude=IDENTITY_FIELDS)
    save_if_unchanged(existing, expected_version=version, fields=changed)
    return existing, True


class VisitEntry:
    """A visit's measurement + injection table as a save sees it: the visit row-locked (with its
    participant, their site and `locked`: whether data management locked it) and the lesions
    with their records at the visit, read under that lock. Made by `visit_entry()` and valid
    only inside its block: what is validated is what is saved, as it is while the save runs."""

    def __init__(self, visit: Visit):
        self.visit = visit
        self.day = _visit_day(visit)
        self.lesions: dict[int, Lesion] = {}

    def _read(self, lesions) -> list[Lesion]:
        found = list(lesions)
        self.lesions = {lesion.pk: lesion for lesion in found}
        return found

    def table_lesions(self) -> list[Lesion]:
        """The lesions of the table (present on the visit day, or with data at this visit) with
        their records at the visit (`Lesion.objects.in_visit_table`) and their last earlier
        measurement (`previous_measurement`), in one statement."""
        return self._read(visit_table_lesions(self.visit, self.day))

    def lesions_named(self, lesion_ids: set[int]) -> list[Lesion]:
        """These lesions of the visit's participant with their records at the visit and their last
        earlier measurement, in one statement."""
        visit = self.visit
        return self._read(
            Lesion.objects.filter(pk__in=lesion_ids, participant_id=visit.participant_id)
            .with_records_at(visit)
            .with_previous_measurement(visit)
            .order_by()
        )


# The two reads of every table save, compiled once per process (trial.prepared_queries): building
# and compiling them cost more Python than the rest of the save's reads together.
def _locked_visits():
    return (
        Visit.objects.select_for_update(of=("self",))
        .select_related("participant__site")
        .annotate(locked=visit_locked())
    )


_ENTRY_VISIT = PreparedQuery(lambda visit_id: _locked_visits().filter(pk=visit_id), visit_id=int)
# Visit.objects.visible_to for a user who sees only their own sites, in the same statement.
_MEMBERS_ENTRY_VISIT = PreparedQuery(
    lambda visit_id, user_id: _locked_visits().filter(
        pk=visit_id, participant__in=Participant.objects.of_site_member(user_id)
    ),
    visit_id=int,
    user_id=int,
)
_TABLE_LESIONS = PreparedQuery(
    lambda visit_id, participant_id, sequence, day: Lesion.objects.in_visit_table(
        Visit(pk=visit_id, participant_id=participant_id, sequence=sequence), day
    ).order_by(),
    visit_id=int,
    participant_id=int,
    sequence=int,
    day=dt.date,
)


def visit_table_lesions(visit: Visit, day: dt.date) -> list[Lesion]:
    """`Lesion.objects.in_visit_table(visit, day)`, unordered: the rows of the visit's table."""
    return _TABLE_LESIONS(
        visit_id=visit.pk, participant_id=visit.participant_id, sequence=visit.sequence, day=day
    )


def _entry_visit(actor: User | None, visit_id: int) -> Visit:
    """The visit row-locked until the transaction ends (one writer per visit at a time: the session
    dose total is checked under this lock), if `actor` may see its site - Visit.DoesNotExist
    otherwise. Not the screening: the child-bearing flag is read only when a dose changes.
    Who may see which visit is `Visit.objects.visible_to`'s rule, one prepared statement a case."""
    visibility = SiteVisibility.ALL_SITES if actor is None else site_visibility(actor)
    if visibility is SiteVisibility.ALL_SITES:
        found = _ENTRY_VISIT(visit_id=visit_id)
    elif visibility is SiteVisibility.MEMBER_SITES:
        found = _MEMBERS_ENTRY_VISIT(visit_id=visit_id, user_id=actor.pk)
    else:
        found = []
    if not found:
        raise Visit.DoesNotExist
    return found[0]


@contextlib.contextmanager
def visit_entry(*, actor: User | None, visit_id: int) -> Iterator[VisitEntry]:
    """A transaction in which a visit's table is read under the visit's row lock, validated and
    saved (`visit_entry_save`): all or nothing. Visit.DoesNotExist if `actor` may not see the
    visit (another site's): a page answers 404."""
    with transaction.atomic():
        yield VisitEntry(_entry_visit(actor, visit_id))


@transaction.atomic
def visit_lesions_save(
    *, actor: User | None, visit: Visit, rows: list[LesionRow], reason: str = ""
) -> SaveResult:
    """Save the measurement + injection table of a visit (lesions as rows) in one transaction:
    `visit_entry_save` with the visit and the rows' lesions read here. PermissionDenied for an
    actor who may not see the visit's site."""
    try:
        entry = VisitEntry(_entry_visit(actor, visit.pk))
    except Visit.DoesNotExist:
        raise PermissionDenied from None
    entry.lesions_named({row.lesion.pk for row in rows})
    return visit_entry_save(actor=actor, entry=entry, rows=rows, reason=reason)


def visit_entry_save(
    *, actor: User | None, entry: VisitEntry, rows: list[LesionRow], reason: str = ""
) -> SaveResult:
    """Save `rows` of the table of `entry` (inside its `visit_entry` block, or
    `visit_lesions_save`'s transaction), whose lesions `entry` has read.

    All or nothing: a refused row (dose limit, pregnancy gate, implausible value, conflict) saves
    none of the table, so the coordinator corrects it and saves again with nothing lost. Only new
    and changed rows are written (and so audited). The statements do not grow with the number of
    rows: the visit and the lesions are read already (by `entry`, which also checked the site);
    then one write per new or changed row, and at most one each for the pregnancy gate and the
    session's dose total (the plausibility warnings compare with the last earlier measurements
    read with the lesions)."""
    visit, day = entry.visit, entry.day
    participant = visit.participant
    if visit.locked:
        require_unlocked(visit=visit)  # refuses, saying who locked it, when and why
    _check_visit_open(visit, participant)
    definition_forms = visit.definition.forms
    result = SaveResult()
    lesions = entry.lesions
    measurements = {
        pk: m for pk, lesion in lesions.items() if (m := getattr(lesion, "measurement_at_visit", None))
    }
    injections = {
        pk: i for pk, lesion in lesions.items() if (i := getattr(lesion, "injection_at_visit", None))
    }
    # What each row writes - a new record or a change - needs its permission. The site was checked
    # when the visit was read (only a visit the actor may see is read): no statement here.
    permissions = {"lesions.add_ultrasoundmeasurement"}
    for row in rows:
        if row.measurement is not None and row.lesion.pk in measurements:
            permissions.add("lesions.change_ultrasoundmeasurement")
        if row.injection is not None:
            permissions.add(
                "lesions.change_injection" if row.lesion.pk in injections else "lesions.add_injection"
            )
    if actor is not None and not actor.has_perms(sorted(permissions)):
        raise PermissionDenied
    if any(row.lesion.pk not in lesions for row in rows):
        raise ValidationError(_("A lesion in this table does not belong to the participant."))
    gate: list[str | None] = []  # the pregnancy gate, asked once for the whole table
    measured: list[tuple[Lesion, UltrasoundMeasurement]] = []
    injected = False
    errors: dict[str, list] = {}

    with audit_context(
        reason=(reason or "").strip() or f"visit {visit.code} data entered", **actor_metadata(actor)
    ):
        for row in rows:
            lesion = lesions[row.lesion.pk]
            prefix = lesion.label
            try:
                if row.measurement is not None:
                    if Form.MEASUREMENTS not in definition_forms:
                        raise ValidationError(_("This visit does not take measurements."))
                    if lesion.resolved_on and lesion.resolved_on < day and lesion.pk not in measurements:
                        raise ValidationError(
                            _("This lesion resolved on %(d)s: it is no longer measured.")
                            % {"d": lesion.resolved_on}
                        )
                    measurement, written = _write(
                        UltrasoundMeasurement,
                        existing=measurements.get(lesion.pk),
                        version=row.measurement_version,
                        values=_with_provenance(row.measurement, measurements.get(lesion.pk)),
                        fields=MEASUREMENT_FIELDS + PROVENANCE_FIELDS,
                        reason=reason,
                        actor=actor,
                        create_kwargs={"lesion": lesion, "visit": visit},
                    )
                    result.measurements.append(measurement)
                    if written:
                        measured.append((lesion, measurement))
                if row.injection is not None:
                    if Form.INJECTIONS not in definition_forms:
                        raise ValidationError(_("No injections are given at this visit."))
                    if lesion.resolved_on and lesion.resolved_on <= day:
                        raise ValidationError(_("This lesion resolved on %(d)s.") % {"d": lesion.resolved_on})
                    values = dict(row.injection)
                    values.setdefault(
                        "concentration_mg_per_ml", PROTOCOL.dosing.default_concentration_mg_per_ml
                    )
                    existing = injections.get(lesion.pk)
                    _check_injection_limits(values)
                    # The pregnancy gate guards giving STS: a new injection, or a larger dose
                    # recorded for it. Correcting the pain score later is not a new injection.
                    dose_changed = existing is None or any(
                        Decimal(str(values[name])) != getattr(existing, name)
                        for name in ("volume_ml", "concentration_mg_per_ml")
                        if name in values
                    )
                    if dose_changed:
                        if not gate:
                            gate.append(pregnancy_gate(participant, day))
                        if gate[0]:
                            raise ValidationError(gate[0])
                    injection, written = _write(
                        Injection,
                        existing=existing,
                        version=row.injection_version,
                        values=values,
                        fields=INJECTION_FIELDS,
                        reason=reason,
                        actor=actor,
                        create_kwargs={"lesion": lesion, "visit": visit},
                    )
                    result.injections.append(injection)
                    injected = injected or written
            except ValidationError as exc:
                errors.setdefault(prefix, []).extend(exc.messages)
        # The session total can only have grown if an injection of the session was written.
        if not errors and injected:
            total = Injection.objects.filter(visit=visit).aggregate(total=Sum("dose_mg"))["total"] or Decimal(
                0
            )
            cap = PROTOCOL.dosing.max_total_dose_per_session_mg
            if total > cap:
                errors.setdefault(_("Session"), []).append(
                    _(
                        "The total STS dose of this session would be %(total)s mg; the protocol allows at most %(cap)s mg."
                    )
                    % {"total": f"{total.normalize():f}", "cap": cap}
                )
        if errors:
            # Nothing of the table is kept: the caller shows the messages with the user's input.
            raise ValidationError({key: messages for key, messages in errors.items()})
    for lesion, measurement in measured:
        result.warnings += _plausibility_warnings(lesion, measurement, previous_measurement(lesion))
    visit_records_changed(visit.pk)
    return result


def _check_injection_limits(values: dict[str, Any]) -> None:
    dosing = PROTOCOL.dosing
    concentration = Decimal(str(values["concentration_mg_per_ml"]))
    if concentration not in dosing.concentrations_mg_per_ml:
        raise ValidationError(
            _("STS concentration must be one of %(allowed)s mg/mL.")
            % {"allowed": ", ".join(str(c) for c in dosing.concentrations_mg_per_ml)}
        )
    volume = values.get("volume_ml")
    if volume is not None and Decimal(str(volume)) > dosing.max_volume_per_lesion_ml:
        raise ValidationError(
            _("%(volume)s mL is more than the protocol's limit of %(limit)s mL per lesion.")
            % {"volume": volume, "limit": dosing.max_volume_per_lesion_ml}
        )
    if not values.get("ultrasound_guided"):
        raise ValidationError(_("Confirm that the injection was ultrasound-guided."))
