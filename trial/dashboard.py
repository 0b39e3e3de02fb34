"""The investigator dashboard's numbers, aggregated in PostgreSQL: one query per section whatever
the number of participants (enrolment, visits, measurements, scores, adverse events), each returning
a few rows per site, visit or participant - never every visit, measurement or score (issue #9: at
10,000 participants, loading them made a web worker grow past 600 MB).

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
from itertools import groupby

import pygal
from django.db import connection
from django.db.models import Case, Count, DateField, Exists, F, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from lesions.models import UltrasoundMeasurement
from lesions.outcomes import Change
from participants.models import (
    AdverseEvent,
    AEReview,
    ConsentRecord,
    EligibilityStatus,
    ParticipantStatus,
    Relatedness,
    Screening,
    Visit,
    VisitStatus,
)
from participants.visits import site_today
from pro_measures.models import Invitation, InvitationStatus, Score
from trial.audit import event_model_for
from trial.data_management.models import Query
from trial.models import Site
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
    """The funnel over all the screenings given, and one per site: counted in the database, one row
    per site. One query."""
    enrolled = Q(participant__status__isnull=False)
    rows = (
        screenings.annotate(has_consent=Exists(ConsentRecord.objects.filter(screening_id=OuterRef("pk"))))
        .values("site__code")
        .annotate(
            screened=Count("pk"),
            eligible=Count("pk", filter=Q(eligibility__status=EligibilityStatus.ELIGIBLE)),
            consented=Count("pk", filter=Q(has_consent=True)),
            enrolled=Count("pk", filter=enrolled),
            completed=Count("pk", filter=Q(participant__status=ParticipantStatus.COMPLETED)),
            withdrawn=Count("pk", filter=Q(participant__status=ParticipantStatus.WITHDRAWN)),
        )
        .order_by("site__code")
    )
    total = Funnel(_("All sites shown"))
    per_site = []
    for row in rows:
        site = Funnel(row.pop("site__code"), **row)
        per_site.append(site)
        for stage, n in row.items():
            setattr(total, stage, getattr(total, stage) + n)
    return total, per_site


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


# The dashboard lists this many overdue visits, longest overdue first; the today list has them all.
OVERDUE_LIST_MAX = 50


def _site_today(today_by_site: dict[int, dt.date]) -> Case:
    """Each visit's site's today (a SQL CASE over the sites in scope, dates computed here)."""
    return Case(
        *[When(participant__site_id=pk, then=Value(day)) for pk, day in today_by_site.items()],
        output_field=DateField(),
    )


def visit_compliance(
    visits, *, today_by_site: dict[int, dt.date]
) -> tuple[Compliance, list[Compliance], int, list[OverdueVisit]]:
    """Completed in window, completed late (after the window closed), missed, and overdue
    (planned, window closed, not done, participant still on study - a withdrawn or completed
    participant's remaining visits are not owed) on each site's today, counted in the database
    per site; and the `OVERDUE_LIST_MAX` longest overdue visits. Scheduled visits only, as
    `Visit.state_on`. Two queries."""
    visits = visits.alias(site_today=_site_today(today_by_site))
    completed = Q(status=VisitStatus.COMPLETED)
    overdue = Q(
        status=VisitStatus.PLANNED,
        window_closes__lt=F("site_today"),
        participant__status=ParticipantStatus.ON_STUDY,
    )
    rows = (
        visits.values("participant__site__code")
        .annotate(
            in_window=Count("pk", filter=completed & Q(visit_date__lte=F("window_closes"))),
            late=Count("pk", filter=completed & Q(visit_date__gt=F("window_closes"))),
            missed=Count("pk", filter=Q(status=VisitStatus.MISSED)),
            overdue=Count("pk", filter=overdue),
        )
        .order_by("participant__site__code")
    )
    total = Compliance(_("All sites shown"))
    per_site = []
    for row in rows:
        per_site.append(Compliance(row.pop("participant__site__code"), **row))
        for attribute, n in row.items():
            setattr(total, attribute, getattr(total, attribute) + n)
    longest = (
        visits.filter(overdue)
        .annotate(overdue_for=F("site_today") - F("window_closes"))
        .order_by("-overdue_for", "participant__study_id", "code")
        .values_list(
            "participant__study_id",
            "participant_id",
            "participant__site_id",
            "participant__site__code",
            "code",
            "name",
            "window_closes",
            "pk",
        )[:OVERDUE_LIST_MAX]
    )
    overdue_rows = [
        OverdueVisit(
            study_id,
            participant_id,
            site_code,
            code,
            name,
            closes,
            (today_by_site[site_id] - closes).days,
            pk,
        )
        for study_id, participant_id, site_id, site_code, code, name, closes, pk in longest
    ]
    return total, per_site, total.overdue, overdue_rows


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


def _rows(queryset, sql: str):
    """Run `sql`, in which `{rows}` stands for `queryset`'s own SQL (its filters, the user's
    visibility among them, stay the ORM's), and yield its rows, turned into Python values a
    batch at a time."""
    inner, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(sql.replace("{rows}", inner), params)
        while batch := cursor.fetchmany(2000):
            yield from batch


# Per participant and visit, the sums of longest diameters and of volumes over the lesions that
# count, in the database (lesions.outcomes is the rule, for one participant, in Python): the
# target lesions measured at the participant's first measured visit, or all lesions measured then
# when none of them is a target. A visit's sum is NULL unless every counted lesion has a value then.
_VISIT_SUMS = """
WITH m (participant_id, lesion_id, is_target, sequence, code, diameter, volume) AS ({rows}),
first AS (SELECT participant_id, min(sequence) AS sequence FROM m GROUP BY participant_id),
at_baseline AS (SELECT m.participant_id, m.lesion_id, m.is_target FROM m JOIN first USING (participant_id, sequence)),
counted AS (
    SELECT b.participant_id, b.lesion_id FROM at_baseline b
    WHERE b.is_target OR NOT EXISTS (
        SELECT 1 FROM at_baseline t WHERE t.participant_id = b.participant_id AND t.is_target
    )
),
n AS (SELECT participant_id, count(*) AS lesions FROM counted GROUP BY participant_id)
SELECT m.participant_id, p.study_id, m.sequence, m.code,
       CASE WHEN count(m.diameter) = n.lesions THEN sum(m.diameter) END,
       CASE WHEN count(m.volume) = n.lesions THEN sum(m.volume) END
FROM m
JOIN counted USING (participant_id, lesion_id)
JOIN n USING (participant_id)
JOIN participants_participant p ON p.id = m.participant_id
GROUP BY m.participant_id, p.study_id, m.sequence, m.code, n.lesions
ORDER BY m.participant_id, m.sequence, m.code
"""


def participant_visit_sums(measurements):
    """(participant id, study id, visit sequence, visit code, sum of longest diameters, sum of
    volumes) per participant and visit with a counted lesion measured, ordered by participant and
    visit; streamed. One query."""
    return _rows(
        measurements.order_by().values_list(
            "lesion__participant_id",
            "lesion_id",
            "lesion__is_target",
            "visit__sequence",
            "visit__code",
            "longest_diameter_mm",
            "volume_mm3",
        ),
        _VISIT_SUMS,
    )


def primary_outcome(visit_sums) -> tuple[list[ParticipantChange], list[PooledChange]]:
    """Per participant: % change from baseline in the sum of longest diameters and of volumes at
    the last visit with a complete sum, and the best (lowest) % change in diameter after baseline.
    Pooled per visit: median % change and n. Same rule as `lesions.outcomes`, from the sums of
    `participant_visit_sums` (no queries here)."""
    per_participant = []
    pooled: dict[str, tuple[list[Decimal], list[Decimal]]] = {}
    for (_participant_id, study_id), visits in groupby(visit_sums, key=lambda row: row[:2]):
        totals = [(code, diameter, volume) for _p, _s, _sequence, code, diameter, volume in visits]
        _code, base_diameter, base_volume = totals[0]
        diameters = [(code, Change(diameter, base_diameter)) for code, diameter, _v in totals]
        volumes = [Change(volume, base_volume) for _c, _d, volume in totals]
        follow_up = [i for i in range(1, len(totals)) if diameters[i][1].percent is not None]
        for (code, diameter), volume in zip(diameters[1:], volumes[1:], strict=True):
            pooled_diameters, pooled_volumes = pooled.setdefault(code, ([], []))
            if diameter.percent is not None:
                pooled_diameters.append(diameter.percent)
            if volume.percent is not None:
                pooled_volumes.append(volume.percent)
        last = follow_up[-1] if follow_up else None
        per_participant.append(
            ParticipantChange(
                study_id=study_id,
                last_visit=diameters[last if last is not None else 0][0],
                diameter_percent=diameters[last][1].percent if last is not None else None,
                volume_percent=volumes[last].percent if last is not None else None,
                best_diameter_percent=min((diameters[i][1].percent for i in follow_up), default=None),
                diameter_by_visit={
                    code: change.percent if change.value is not None else None for code, change in diameters
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


# Per score and visit: n, and the middle one or two values (in order) of the scores and of their
# changes from the participant's baseline (the score at their first visit with it), whose mean is
# the median: the database sorts, Python takes the same `median` as everywhere else.
_SCORE_MEDIANS = """
WITH s (name, participant_id, code, sequence, value) AS ({rows}),
c AS (
    SELECT name, code, sequence, value,
           value - first_value(value) OVER (
               PARTITION BY name, participant_id ORDER BY sequence, code, value
           ) AS change
    FROM s
),
r AS (
    SELECT name, code, sequence, value, change,
           row_number() OVER (PARTITION BY name, code ORDER BY value) AS value_rank,
           row_number() OVER (PARTITION BY name, code ORDER BY change) AS change_rank,
           count(*) OVER (PARTITION BY name, code) AS n
    FROM c
)
SELECT name, code, max(sequence), n,
       array_agg(value ORDER BY value_rank) FILTER (WHERE value_rank IN ((n + 1) / 2, (n + 2) / 2)),
       array_agg(change ORDER BY change_rank) FILTER (WHERE change_rank IN ((n + 1) / 2, (n + 2) / 2))
FROM r
GROUP BY name, code, n
"""


def score_trajectories(scores) -> list[ScoreTrajectory]:
    """Per score and visit: median value and median change from the participant's baseline score
    (the first visit with that score), aggregated in the database. One query."""
    rows = scores.filter(name__in=[name for name, _label in DASHBOARD_SCORES], value__isnull=False)
    points: dict[str, list[tuple[int, ScorePoint]]] = defaultdict(list)
    for name, code, sequence, n, values, changes in _rows(
        rows.order_by().values_list(
            "name",
            "response__invitation__participant_id",
            "response__invitation__visit__code",
            "response__invitation__visit__sequence",
            "value",
        ),
        _SCORE_MEDIANS,
    ):
        points[name].append((sequence, ScorePoint(code, n, median(values), median(changes))))
    return [
        ScoreTrajectory(
            name,
            str(label),
            [
                point
                for _sequence, point in sorted(points[name], key=lambda item: (item[0], item[1].visit_code))
            ],
        )
        for name, label in DASHBOARD_SCORES
    ]


# --- Adverse events ---------------------------------------------------------------------------------


@dataclass
class AdverseEventSummary:
    total: int = 0
    by_grade: dict[int, int] = field(default_factory=lambda: dict.fromkeys(range(1, 6), 0))
    serious: int = 0
    related: int = 0
    participants: int = 0


def adverse_event_summary(events) -> AdverseEventSummary:
    """Counted in the database. One query."""
    grades = range(1, 6)  # CTCAE grades 1-5
    counts = events.aggregate(
        total=Count("pk"),
        serious=Count("pk", filter=Q(serious=True)),
        related=Count("pk", filter=Q(related_to_sts__in=RELATED)),
        participants=Count("participant_id", distinct=True),
        **{f"grade_{grade}": Count("pk", filter=Q(grade=grade)) for grade in grades},
    )
    return AdverseEventSummary(
        total=counts["total"],
        by_grade={grade: counts[f"grade_{grade}"] for grade in grades},
        serious=counts["serious"],
        related=counts["related"],
        participants=counts["participants"],
    )


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


def form_completeness(visits) -> list[Completeness]:
    """Forms expected at every completed visit whose definition lists them, against those entered:
    ultrasound measurements (any lesion measured), questionnaires (one per instrument of the visit)
    and the AE review. The database counts completed visits per visit type and what was entered
    (a handful of rows); the protocol says which forms each type expects. One query."""
    completed_questionnaires = (
        Invitation.objects.filter(visit_id=OuterRef("pk"), status=InvitationStatus.COMPLETED)
        .order_by()
        .values("visit_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    rows = (
        visits.filter(status=VisitStatus.COMPLETED)
        .annotate(
            measured=Exists(UltrasoundMeasurement.objects.filter(visit_id=OuterRef("pk"))),
            reviewed=Exists(AEReview.objects.filter(visit_id=OuterRef("pk"))),
            questionnaires=Coalesce(Subquery(completed_questionnaires), 0),
        )
        .values("definition_code", "measured", "reviewed", "questionnaires")
        .annotate(n=Count("pk"))
        .order_by()
    )
    expected = dict.fromkeys((Form.MEASUREMENTS, Form.PROS, Form.AE_REVIEW), 0)
    entered = dict(expected)
    for row in rows:
        definition, n = PROTOCOL.visit(row["definition_code"]), row["n"]
        if Form.MEASUREMENTS in definition.forms:
            expected[Form.MEASUREMENTS] += n
            entered[Form.MEASUREMENTS] += n * row["measured"]
        if Form.PROS in definition.forms:
            asked = len(definition.instruments)
            expected[Form.PROS] += n * asked
            entered[Form.PROS] += n * min(row["questionnaires"], asked)
        if Form.AE_REVIEW in definition.forms:
            expected[Form.AE_REVIEW] += n
            entered[Form.AE_REVIEW] += n * row["reviewed"]
    return [Completeness(form, str(FORM_LABELS[form]), expected[form], entered[form]) for form in expected]


# --- Charts -----------------------------------------------------------------------------------------


# More bars than this are thinner than a pixel: the chart draws every k-th participant in rank
# order (an even sample of the distribution, both extremes kept) and says so in its title.
WATERFALL_MAX_BARS = 100
# Beyond this many participants a legend is unreadable (and pygal lays it out in quadratic time:
# minutes at 2,000 lines).
LEGEND_MAX_SERIES = 20
X_LABELS_MAX = 60


def waterfall_svg(rows: list[ParticipantChange]) -> str:
    """Best % change in the sum of longest diameters per participant, largest increase first."""
    ranked = sorted(
        (r for r in rows if r.best_diameter_percent is not None), key=lambda r: -r.best_diameter_percent
    )
    title = _("Best change from baseline in the sum of longest diameters (%)")
    drawn = ranked
    if len(ranked) > WATERFALL_MAX_BARS:
        step = -(-len(ranked) // WATERFALL_MAX_BARS)
        drawn = ranked[::step]
        if drawn[-1] is not ranked[-1]:
            drawn.append(ranked[-1])  # the largest decrease too
        title = _("%(title)s: %(drawn)s of %(total)s participants, evenly sampled in rank order") % {
            "title": title,
            "drawn": len(drawn),
            "total": len(ranked),
        }
    chart = pygal.Bar(
        style=STYLE,
        width=720,
        height=300,
        title=title,
        y_title="%",
        x_labels=[r.study_id for r in drawn],
        show_x_labels=len(drawn) <= X_LABELS_MAX,
        x_label_rotation=45,
        show_legend=False,
        js=[],
        disable_xml_declaration=True,
        no_data_text=_("No follow-up measurements"),
    )
    chart.add(_("Best % change"), [float(r.best_diameter_percent) for r in drawn])
    return chart.render(is_unicode=True)


# More lines than this are one grey mass: the chart draws an even sample (every k-th participant
# by study id) and says so.
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
        show_dots=len(drawn) <= LEGEND_MAX_SERIES,
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


# The per-participant outcome table shows this many participants (by study id); each
# participant's own page has their change from baseline.
OUTCOME_TABLE_MAX = 50


@dataclass
class Dashboard:
    scope: str
    one_site: bool
    target: int
    funnel: Funnel
    funnel_by_site: list[Funnel]
    compliance: Compliance
    compliance_by_site: list[Compliance]
    overdue_total: int
    overdue: list[OverdueVisit]  # the longest overdue, at most OVERDUE_LIST_MAX
    outcome_total: int
    outcome_rows: list[ParticipantChange]  # the first by study id, at most OUTCOME_TABLE_MAX
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
    """Everything the dashboard shows, for `site` or (None) every site `user` may see. The
    database aggregates; Python holds a few numbers per participant at most, never their
    measurements or visits. Eight queries whatever the number of participants (nine over all
    sites: their time zones)."""

    def scoped(queryset, path: str):
        return queryset.filter(**{path: site}) if site is not None else queryset

    screenings = scoped(Screening.objects.visible_to(user), "site")
    funnel, funnel_by_site = enrolment_funnel(screenings)

    sites = [site] if site is not None else Site.objects.order_by()
    visits = scoped(Visit.objects.visible_to(user), "participant__site").exclude(
        definition_code=PROTOCOL.unscheduled_visit.code
    )
    compliance, compliance_by_site, overdue_total, overdue = visit_compliance(
        visits, today_by_site={s.pk: site_today(s) for s in sites}
    )

    measurements = scoped(UltrasoundMeasurement.objects.visible_to(user), "lesion__participant__site")
    outcome_rows, pooled = primary_outcome(participant_visit_sums(measurements))

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
        overdue_total=overdue_total,
        overdue=overdue,
        outcome_total=len(outcome_rows),
        outcome_rows=outcome_rows[:OUTCOME_TABLE_MAX],
        pooled=pooled,
        waterfall_svg=waterfall_svg(outcome_rows),
        spaghetti_svg=spaghetti_svg(outcome_rows),
        scores=[(t, score_svg(t)) for t in trajectories],
        adverse_events=events,
        completeness=form_completeness(visits),
        query_ages=open_queries_by_age(
            scoped(Query.objects.visible_to(user), "participant__site"),
            today=site_today(site) if site is not None else timezone.localdate(),
        ),
    )
