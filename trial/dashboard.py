"""The investigator dashboard's numbers, gathered set-based: one query per section whatever the
number of participants (enrolment, visits, measurements, scores, adverse events).

Everything here reads what `user` may see, narrowed to one site when `site` is given. Participants
appear by study id only: the dashboard shows no identifying data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

import pygal
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from lesions.models import UltrasoundMeasurement
from lesions.outcomes import ParticipantOutcome, outcome_from_measurements
from participants.models import (
    AdverseEvent,
    AEReview,
    ConsentRecord,
    EligibilityStatus,
    ParticipantStatus,
    Relatedness,
    Screening,
    Visit,
    VisitState,
    VisitStatus,
)
from participants.visits import site_today
from pro_measures.models import Invitation, InvitationStatus, Score
from trial.audit import event_model_for
from trial.data_management.models import Query
from trial.protocol import FORM_LABELS, PROTOCOL, Form
from trial.reports.charts import STYLE, Series, lesion_trend_svg

# The scores the dashboard follows (DOMAIN.md s.5): pain, disability (HAQ-DI), hand function.
DASHBOARD_SCORES = (
    ("pain_nrs", gettext_lazy("Calcinosis pain NRS (0-10)")),
    ("haq_di", gettext_lazy("HAQ-DI (0-3)")),
    ("cochin", gettext_lazy("Cochin Hand Function Scale (0-90)")),
)
# A possible, probable or definite relation counts as related (CTCAE reporting convention).
RELATED = frozenset({Relatedness.POSSIBLE, Relatedness.PROBABLE, Relatedness.DEFINITE})


# --- Enrolment funnel -------------------------------------------------------------------------------


@dataclass
class Funnel:
    label: str
    screened: int = 0
    eligible: int = 0
    consented: int = 0
    enrolled: int = 0
    completed: int = 0
    withdrawn: int = 0

    @property
    def stages(self) -> list[tuple[str, int]]:
        return [
            (_("Screened"), self.screened),
            (_("Eligible"), self.eligible),
            (_("Consented"), self.consented),
            (_("Enrolled"), self.enrolled),
            (_("Completed"), self.completed),
            (_("Withdrawn"), self.withdrawn),
        ]


def enrolment_funnel(screenings) -> tuple[Funnel, list[Funnel]]:
    """The funnel over all the screenings given, and one per site. One query."""
    rows = (
        screenings.annotate(has_consent=Exists(ConsentRecord.objects.filter(screening_id=OuterRef("pk"))))
        .values_list("site__code", "eligibility__status", "has_consent", "participant__status")
        .order_by()
    )
    total = Funnel(_("All sites shown"))
    per_site: dict[str, Funnel] = {}
    for site_code, eligibility, has_consent, participant_status in rows:
        site = per_site.setdefault(site_code, Funnel(site_code))
        for funnel in (total, site):
            funnel.screened += 1
            funnel.eligible += eligibility == EligibilityStatus.ELIGIBLE
            funnel.consented += bool(has_consent)
            funnel.enrolled += participant_status is not None
            funnel.completed += participant_status == ParticipantStatus.COMPLETED
            funnel.withdrawn += participant_status == ParticipantStatus.WITHDRAWN
    return total, [per_site[code] for code in sorted(per_site)]


# --- Visit compliance -------------------------------------------------------------------------------


@dataclass
class Compliance:
    label: str
    in_window: int = 0
    late: int = 0
    missed: int = 0
    overdue: int = 0

    @property
    def due(self) -> int:
        return self.in_window + self.late + self.missed + self.overdue

    @property
    def in_window_percent(self) -> Decimal | None:
        if not self.due:
            return None
        return (Decimal(self.in_window) * 100 / self.due).quantize(Decimal("0.1"))


@dataclass(frozen=True)
class OverdueVisit:
    study_id: str
    participant_id: int
    site_code: str
    visit_code: str
    visit_name: str
    window_closes: dt.date
    days_overdue: int
    visit_id: int


def visit_compliance(visits: list[Visit]) -> tuple[Compliance, list[Compliance], list[OverdueVisit]]:
    """Completed in window, completed late (after the window closed), missed, and overdue
    (planned, window closed, not done, participant still on study) on each site's today.
    Scheduled visits only; `visits` come with participant and site loaded."""
    total = Compliance(_("All sites shown"))
    per_site: dict[str, Compliance] = {}
    overdue: list[OverdueVisit] = []
    today_by_site: dict[int, dt.date] = {}
    for visit in visits:
        site = visit.participant.site
        today = today_by_site.setdefault(site.pk, site_today(site))
        counters = (total, per_site.setdefault(site.code, Compliance(site.code)))
        state = visit.state_on(today)
        if state == VisitState.COMPLETED:
            attribute = "late" if visit.visit_date > visit.window_closes else "in_window"
        elif state == VisitState.MISSED:
            attribute = "missed"
        elif state == VisitState.OVERDUE:
            if visit.participant.status != ParticipantStatus.ON_STUDY:
                continue  # a withdrawn or completed participant's remaining visits are not owed
            attribute = "overdue"
            overdue.append(
                OverdueVisit(
                    visit.participant.study_id,
                    visit.participant_id,
                    site.code,
                    visit.code,
                    visit.name,
                    visit.window_closes,
                    (today - visit.window_closes).days,
                    visit.pk,
                )
            )
        else:
            continue
        for counter in counters:
            setattr(counter, attribute, getattr(counter, attribute) + 1)
    overdue.sort(key=lambda row: (-row.days_overdue, row.study_id, row.visit_code))
    return total, [per_site[code] for code in sorted(per_site)], overdue


# --- Primary outcome --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantChange:
    study_id: str
    last_visit: str
    diameter_percent: Decimal | None
    volume_percent: Decimal | None
    best_diameter_percent: Decimal | None
    diameter_by_visit: dict[str, Decimal | None]


@dataclass(frozen=True)
class PooledChange:
    visit_code: str
    n: int
    median_diameter_percent: Decimal | None
    median_volume_percent: Decimal | None


def median(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    return Decimal(statistics.median(values)).quantize(Decimal("0.1"))


def primary_outcome(
    measurements: list[UltrasoundMeasurement],
) -> tuple[list[ParticipantChange], list[PooledChange]]:
    """Per participant: % change from baseline in the sum of longest diameters and of volumes at
    the last visit with a complete sum, and the best (lowest) % change in diameter after baseline.
    Pooled per visit: median % change and n. Same rule as `lesions.outcomes` (no queries here)."""
    by_participant: dict[int, list[UltrasoundMeasurement]] = defaultdict(list)
    for row in measurements:
        by_participant[row.lesion.participant_id].append(row)
    per_participant = []
    pooled: dict[str, tuple[list[Decimal], list[Decimal]]] = {}
    for rows in by_participant.values():
        rows.sort(key=lambda m: (m.lesion.label, m.visit.sequence))
        outcome: ParticipantOutcome = outcome_from_measurements(rows)
        follow_up = [p for p in outcome.totals[1:] if p.sum_longest_diameter.percent is not None]
        if not outcome.totals:
            continue
        for point in outcome.totals[1:]:
            diameters, volumes = pooled.setdefault(point.visit_code, ([], []))
            if point.sum_longest_diameter.percent is not None:
                diameters.append(point.sum_longest_diameter.percent)
            if point.sum_volume.percent is not None:
                volumes.append(point.sum_volume.percent)
        last = follow_up[-1] if follow_up else None
        per_participant.append(
            ParticipantChange(
                study_id=rows[0].lesion.participant.study_id,
                last_visit=last.visit_code if last else outcome.totals[0].visit_code,
                diameter_percent=last.sum_longest_diameter.percent if last else None,
                volume_percent=last.sum_volume.percent if last else None,
                best_diameter_percent=min((p.sum_longest_diameter.percent for p in follow_up), default=None),
                diameter_by_visit={
                    p.visit_code: p.sum_longest_diameter.percent
                    if p.sum_longest_diameter.value is not None
                    else None
                    for p in outcome.totals
                },
            )
        )
    per_participant.sort(key=lambda row: row.study_id)
    order = [v.code for v in PROTOCOL.planned_visits]
    pooled_rows = [
        PooledChange(code, len(pooled[code][0]), median(pooled[code][0]), median(pooled[code][1]))
        for code in sorted(pooled, key=lambda c: order.index(c) if c in order else len(order))
    ]
    return per_participant, pooled_rows


# --- PRO scores -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScorePoint:
    visit_code: str
    n: int
    median_value: Decimal | None
    median_change: Decimal | None


@dataclass(frozen=True)
class ScoreTrajectory:
    name: str
    label: str
    points: list[ScorePoint]


def score_trajectories(scores) -> list[ScoreTrajectory]:
    """Per score and visit: median value and median change from the participant's baseline score
    (the first visit with that score). One query."""
    rows = scores.filter(
        name__in=[name for name, _label in DASHBOARD_SCORES], value__isnull=False
    ).values_list(
        "name",
        "response__invitation__participant_id",
        "response__invitation__visit__code",
        "response__invitation__visit__sequence",
        "value",
    )
    by_participant: dict[tuple[str, int], list[tuple[int, str, Decimal]]] = defaultdict(list)
    for name, participant_id, code, sequence, value in rows:
        by_participant[(name, participant_id)].append((sequence, code, value))
    values: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    changes: dict[str, dict[str, list[Decimal]]] = defaultdict(lambda: defaultdict(list))
    sequence_of: dict[str, int] = {}
    for (name, _participant), points in by_participant.items():
        points.sort()
        baseline = points[0][2]
        for sequence, code, value in points:
            sequence_of[code] = sequence
            values[name][code].append(value)
            changes[name][code].append(value - baseline)
    trajectories = []
    for name, label in DASHBOARD_SCORES:
        codes = sorted(values[name], key=sequence_of.__getitem__)
        trajectories.append(
            ScoreTrajectory(
                name,
                str(label),
                [
                    ScorePoint(
                        code, len(values[name][code]), median(values[name][code]), median(changes[name][code])
                    )
                    for code in codes
                ],
            )
        )
    return trajectories


# --- Adverse events ---------------------------------------------------------------------------------


@dataclass
class AdverseEventSummary:
    total: int = 0
    by_grade: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    serious: int = 0
    related: int = 0
    participants: int = 0


def adverse_event_summary(events) -> AdverseEventSummary:
    summary = AdverseEventSummary()
    people = set()
    for participant_id, grade, serious, related in events.values_list(
        "participant_id", "grade", "serious", "related_to_sts"
    ):
        summary.total += 1
        summary.by_grade[grade] += 1
        summary.serious += serious
        summary.related += related in RELATED
        people.add(participant_id)
    summary.participants = len(people)
    return summary


# --- Data completeness ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Completeness:
    form: str
    label: str
    expected: int
    entered: int

    @property
    def missing(self) -> int:
        return self.expected - self.entered


def with_entered_forms(visits):
    """Annotate each visit with whether its AE review was recorded and how many of its
    questionnaires were completed, in the visit list's own query."""
    completed = (
        Invitation.objects.filter(visit_id=OuterRef("pk"), status=InvitationStatus.COMPLETED)
        .order_by()
        .values("visit_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return visits.annotate(
        has_ae_review=Exists(AEReview.objects.filter(visit_id=OuterRef("pk"))),
        questionnaires_completed=Coalesce(Subquery(completed), 0),
    )


def form_completeness(visits: list[Visit], measured_visit_ids: set[int]) -> list[Completeness]:
    """Forms expected at every completed visit whose definition lists them, against those entered:
    ultrasound measurements (any lesion measured), questionnaires (one per instrument of the visit)
    and the AE review. `visits` come from `with_entered_forms`."""
    done = [v for v in visits if v.status == VisitStatus.COMPLETED]
    measured = [v for v in done if Form.MEASUREMENTS in v.definition.forms]
    reviewed = [v for v in done if Form.AE_REVIEW in v.definition.forms]
    asked = [v for v in done if Form.PROS in v.definition.forms]
    return [
        Completeness(
            Form.MEASUREMENTS,
            str(FORM_LABELS[Form.MEASUREMENTS]),
            len(measured),
            sum(1 for v in measured if v.pk in measured_visit_ids),
        ),
        Completeness(
            Form.PROS,
            str(FORM_LABELS[Form.PROS]),
            sum(len(v.definition.instruments) for v in asked),
            sum(min(v.questionnaires_completed, len(v.definition.instruments)) for v in asked),
        ),
        Completeness(
            Form.AE_REVIEW,
            str(FORM_LABELS[Form.AE_REVIEW]),
            len(reviewed),
            sum(1 for v in reviewed if v.has_ae_review),
        ),
    ]


# --- Charts -----------------------------------------------------------------------------------------


def waterfall_svg(rows: list[ParticipantChange]) -> str:
    """Best % change in the sum of longest diameters per participant, largest increase first."""
    ranked = sorted(
        (r for r in rows if r.best_diameter_percent is not None), key=lambda r: -r.best_diameter_percent
    )
    chart = pygal.Bar(
        style=STYLE,
        width=720,
        height=300,
        title=_("Best change from baseline in the sum of longest diameters (%)"),
        y_title="%",
        x_labels=[r.study_id for r in ranked],
        show_x_labels=len(ranked) <= X_LABELS_MAX,
        x_label_rotation=45,
        show_legend=False,
        js=[],
        disable_xml_declaration=True,
        no_data_text=_("No follow-up measurements"),
    )
    chart.add(_("Best % change"), [float(r.best_diameter_percent) for r in ranked])
    return chart.render(is_unicode=True)


# Beyond this many participants a legend is unreadable (and pygal lays it out in quadratic time:
# minutes at 2,000 lines); the table beside the chart names every participant.
LEGEND_MAX_SERIES = 20
X_LABELS_MAX = 60


# More lines than this are one grey mass: the chart draws an even sample (every k-th participant
# by study id) and says so; the table beside it lists everyone.
SPAGHETTI_MAX_LINES = 100


def spaghetti_svg(rows: list[ParticipantChange]) -> str:
    codes = [v.code for v in PROTOCOL.planned_visits]
    title = _("Change from baseline in the sum of longest diameters over visits (%)")
    drawn = rows
    if len(rows) > SPAGHETTI_MAX_LINES:
        drawn = rows[:: -(-len(rows) // SPAGHETTI_MAX_LINES)]
        title = _("%(title)s: %(drawn)s of %(total)s participants, evenly sampled") % {
            "title": title,
            "drawn": len(drawn),
            "total": len(rows),
        }
    return lesion_trend_svg(
        title=title,
        y_title="%",
        x_labels=codes,
        series=[Series(r.study_id, [_float(r.diameter_by_visit.get(code)) for code in codes]) for r in drawn],
        show_legend=len(drawn) <= LEGEND_MAX_SERIES,
    )


def score_svg(trajectory: ScoreTrajectory) -> str:
    return lesion_trend_svg(
        title=_("%(score)s: median over visits") % {"score": trajectory.label},
        y_title=trajectory.label,
        x_labels=[p.visit_code for p in trajectory.points],
        series=[Series(_("Median"), [_float(p.median_value) for p in trajectory.points])],
    )


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


# --- The page ---------------------------------------------------------------------------------------


QUERY_AGE_BANDS = ((0, 7), (8, 14), (15, 30), (31, None))


@dataclass(frozen=True)
class QueryAgeBand:
    label: str
    open: int
    answered: int


def open_queries_by_age(queries, *, today: dt.date) -> list[QueryAgeBand]:
    """Queries still waiting (open: on the site; answered: on the monitor) by age in days. One query."""
    counts = {band: {"open": 0, "answered": 0} for band in QUERY_AGE_BANDS}
    for state, raised_at in queries.unresolved().values_list("state", "raised_at"):
        age = (today - raised_at.date()).days
        for low, high in QUERY_AGE_BANDS:
            if age >= low and (high is None or age <= high):
                counts[(low, high)][state if state in ("open", "answered") else "open"] += 1
                break
    return [
        QueryAgeBand(
            f"{low}-{high} days" if high is not None else f"over {low - 1} days", c["open"], c["answered"]
        )
        for (low, high), c in counts.items()
    ]


@dataclass
class Dashboard:
    scope: str
    one_site: bool
    target: int
    funnel: Funnel
    funnel_by_site: list[Funnel]
    compliance: Compliance
    compliance_by_site: list[Compliance]
    overdue: list[OverdueVisit]
    outcome_rows: list[ParticipantChange]
    pooled: list[PooledChange]
    waterfall_svg: str
    spaghetti_svg: str
    scores: list[tuple[ScoreTrajectory, str]]
    adverse_events: AdverseEventSummary
    completeness: list[Completeness]
    query_ages: list[QueryAgeBand]


# Every audited table the dashboard reads. Any insert, update or delete of their rows writes an
# audit event with a new id (trial.audit: triggers, so no code path can skip it), so the newest
# event id of each is a change counter: the cached dashboard is stale exactly when one moved.
def _dashboard_sources():
    from lesions.models import Lesion
    from participants.models import EligibilityAssessment, Participant
    from pro_measures.models import Response
    from trial.models import Site, SiteMembership

    return (
        Site, SiteMembership, Screening, EligibilityAssessment, ConsentRecord, Participant, Visit, Lesion,
        UltrasoundMeasurement, Invitation, Response, Score, AEReview, AdverseEvent, Query,
    )  # fmt: skip


def dashboard_cache_key(*, user, site=None) -> str:
    """The cache key of `user`'s dashboard for `site` (None: all their sites) as the data stand
    now: database, audit-event counters, the sites in scope, the day (overdue, query ages),
    language and protocol version. Two queries."""
    # Table names from the models' own metadata, quoted; nothing from a request.
    tables = [connection.ops.quote_name(event_model_for(m)._meta.db_table) for m in _dashboard_sources()]
    with connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"(SELECT max(pgh_id) FROM {t})" for t in tables))  # noqa: S608
        counters = cursor.fetchone()
    if site is not None:
        scope = f"site{site.pk}"
    elif user.has_perm("trial.view_all_sites"):
        scope = "all"
    else:
        scope = ",".join(map(str, sorted(user.memberships.values_list("site_id", flat=True))))
    today = site_today(site) if site is not None else timezone.localdate()
    parts = [
        connection.settings_dict["NAME"],
        *map(str, counters),
        scope,
        str(today),
        get_language() or "",
        PROTOCOL.version,
    ]
    return "dashboard:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def dashboard_for(*, user, site=None) -> Dashboard:
    """Everything the dashboard shows, for `site` or (None) every site `user` may see.
    Seven queries whatever the number of participants."""

    def scoped(queryset, path: str):
        return queryset.filter(**{path: site}) if site is not None else queryset

    screenings = scoped(Screening.objects.visible_to(user), "site")
    funnel, funnel_by_site = enrolment_funnel(screenings)

    visits = list(
        with_entered_forms(scoped(Visit.objects.visible_to(user), "participant__site"))
        .exclude(definition_code=PROTOCOL.unscheduled_visit.code)
        .select_related("participant", "participant__site")
        .order_by("participant_id", "sequence")
    )
    compliance, compliance_by_site, overdue = visit_compliance(visits)

    measurements = list(
        scoped(UltrasoundMeasurement.objects.visible_to(user), "lesion__participant__site").select_related(
            "lesion", "lesion__participant", "visit"
        )
    )
    outcome_rows, pooled = primary_outcome(measurements)

    trajectories = score_trajectories(
        scoped(Score.objects.visible_to(user), "response__invitation__participant__site")
    )
    events = adverse_event_summary(scoped(AdverseEvent.objects.visible_to(user), "participant__site"))

    return Dashboard(
        scope=site.name if site is not None else _("All your sites"),
        one_site=site is not None,
        target=PROTOCOL.enrolment_target,
        funnel=funnel,
        funnel_by_site=funnel_by_site,
        compliance=compliance,
        compliance_by_site=compliance_by_site,
        overdue=overdue,
        outcome_rows=outcome_rows,
        pooled=pooled,
        waterfall_svg=waterfall_svg(outcome_rows),
        spaghetti_svg=spaghetti_svg(outcome_rows),
        scores=[(t, score_svg(t)) for t in trajectories],
        adverse_events=events,
        completeness=form_completeness(visits, {m.visit_id for m in measurements}),
        query_ages=open_queries_by_age(
            scoped(Query.objects.visible_to(user), "participant__site"),
            today=site_today(site) if site is not None else timezone.localdate(),
        ),
    )
