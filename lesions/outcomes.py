"""The primary outcome: change from baseline in lesion size (DOMAIN.md s.4).

Per lesion: longest diameter and volume at each visit, with the change from baseline (absolute and
%). Per participant: the sum of longest diameters and of volumes over the target lesions (all
lesions when none is flagged as a target) that were measured at baseline; a visit's sum counts
only when every one of those lesions was measured then, so a missing lesion never looks like a
shrinking one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from lesions.models import UltrasoundMeasurement

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class Change:
    value: Decimal | None
    baseline: Decimal | None

    @property
    def absolute(self) -> Decimal | None:
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline

    @property
    def percent(self) -> Decimal | None:
        if self.absolute is None or not self.baseline:
            return None
        return (self.absolute * HUNDRED / self.baseline).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class LesionPoint:
    visit_code: str
    visit_sequence: int
    longest_diameter: Change
    volume: Change


@dataclass(frozen=True)
class LesionTrajectory:
    lesion_id: int
    label: str
    is_target: bool
    points: list[LesionPoint]


@dataclass(frozen=True)
class ParticipantPoint:
    visit_code: str
    visit_sequence: int
    sum_longest_diameter: Change
    sum_volume: Change


@dataclass(frozen=True)
class ParticipantOutcome:
    lesions: list[LesionTrajectory]
    totals: list[ParticipantPoint]


def participant_outcome(participant_id: int) -> ParticipantOutcome:
    """Change from baseline for one participant. One query."""
    rows = list(
        UltrasoundMeasurement.objects.filter(lesion__participant_id=participant_id)
        .select_related("lesion", "visit")
        .order_by("lesion__label", "visit__sequence")
    )
    return outcome_from_measurements(rows)


def outcome_from_measurements(rows: list[UltrasoundMeasurement]) -> ParticipantOutcome:
    """Change from baseline from one participant's measurements, ordered by lesion label then
    visit sequence, with `lesion` and `visit` loaded. No queries (the dashboard loads every
    participant's measurements at once and calls this per participant)."""
    by_lesion: dict[int, list[UltrasoundMeasurement]] = defaultdict(list)
    for row in rows:
        by_lesion[row.lesion_id].append(row)

    trajectories = []
    for measurements in by_lesion.values():
        lesion = measurements[0].lesion
        base = measurements[0]
        trajectories.append(
            LesionTrajectory(
                lesion_id=lesion.pk,
                label=lesion.label,
                is_target=lesion.is_target,
                points=[
                    LesionPoint(
                        m.visit.code,
                        m.visit.sequence,
                        Change(m.longest_diameter_mm, base.longest_diameter_mm),
                        Change(m.volume_mm3, base.volume_mm3),
                    )
                    for m in measurements
                ],
            )
        )
    return ParticipantOutcome(trajectories, _totals(trajectories, rows))


def _totals(
    trajectories: list[LesionTrajectory], rows: list[UltrasoundMeasurement]
) -> list[ParticipantPoint]:
    if not rows:
        return []
    first_visit = min(r.visit.sequence for r in rows)
    at_baseline = [t for t in trajectories if t.points[0].visit_sequence == first_visit]
    counted = [t for t in at_baseline if t.is_target] or at_baseline
    if not counted:
        return []
    visits = sorted({(p.visit_sequence, p.visit_code) for t in counted for p in t.points})
    points_by = {(t.lesion_id, p.visit_sequence): p for t in counted for p in t.points}

    def total(sequence: int, attribute: str) -> Decimal | None:
        values = []
        for t in counted:
            point = points_by.get((t.lesion_id, sequence))
            value = getattr(point, attribute).value if point else None
            if value is None:
                return None
            values.append(value)
        return sum(values, Decimal(0))

    base_diameter, base_volume = total(first_visit, "longest_diameter"), total(first_visit, "volume")
    return [
        ParticipantPoint(
            code,
            sequence,
            Change(total(sequence, "longest_diameter"), base_diameter),
            Change(total(sequence, "volume"), base_volume),
        )
        for sequence, code in visits
    ]
