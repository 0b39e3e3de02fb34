"""Synthetic trial data at scale, for the benchmark (issue #9) and for trying the pages with
realistic volumes: `manage.py seed_demo --participants N --seed S`.

Deterministic: every value comes from one `random.Random(seed)` stream walked in a fixed order
and from the base date, never from the clock, so the same seed, base date and empty database
give the same data. (Record ids, `created_at`-style bookkeeping stamps and audit event times are
the database's own and differ between runs.)

Fast: rows are built in memory for a batch of participants and written with `bulk_create`, one
statement per model per batch, instead of one service call per record. What is bypassed is the
per-row Python of the services, never the database's rules: the CHECK and UNIQUE constraints, the
enrolment guard (confirmed eligibility and consent in force), the lock guard and the audit
triggers all run for every inserted row. The pghistory triggers write an insert event for each
row, with the context set here (`command: seed_demo`, the reason naming the seed).

The values follow trial/protocol.py: the visit schedule and windows, the forms each visit expects,
the questionnaires due at each visit (scored by the instruments' own scoring functions), the dose
limits (per lesion and per session) and the pregnancy test before injections.

This module is on the read side of the layering (ARCHITECTURE.md): it combines every app.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction

from lesions.models import (
    AnatomicalSite,
    DepthNotMeasurableReason,
    Digit,
    DopplerSignal,
    Injection,
    Laterality,
    Lesion,
    NeedleGauge,
    Phalanx,
    UltrasoundMeasurement,
)
from participants.models import (
    AdverseEvent,
    AEReview,
    ConsentDocument,
    ConsentRecord,
    ConsentWithdrawal,
    EligibilityAssessment,
    EndReason,
    Participant,
    ParticipantStatus,
    PregnancyTest,
    Screening,
    ScreeningOutcome,
    Visit,
    VisitStatus,
    WithdrawalScope,
)
from participants.models.safety import EXPECTED_LOCAL_TERMS
from participants.visits import planned_visit
from pro_measures.instruments import INSTRUMENTS, ItemKind
from pro_measures.invitations import end_of_day, local_datetime
from pro_measures.models import (
    Invitation,
    InvitationStatus,
    Reminder,
    ReminderKind,
    ReminderState,
    Response,
    Score,
)
from pro_measures.reminders import invitation_reminders
from trial import services as trial_services
from trial.audit import audit_context
from trial.data_management.models import Query, QueryState
from trial.data_management.verification import verification_record
from trial.demo import DEMO_SITE_CODE, DEMO_USERS
from trial.models import Site, User
from trial.protocol import PROTOCOL, Form, VisitDefinition
from trial.roles import Role
from trial.signatures.models import Signature, SignatureMeaning

UTC = dt.UTC
AUDIT_ACTOR = "synthetic data generator (seed_demo --participants)"
# Marks every synthetic screening (hospital record number), so a second run with the same seed
# is recognised and refused instead of doubling the data.
RECORD_NUMBER_PREFIX = "SYN"
# The demo site plus two more, in other time zones (DEMO DATA, like the demo site).
SYNTHETIC_SITES = (
    ("02", "Synthetic Royal Infirmary (DEMO DATA)", "Europe/London"),
    ("03", "Synthetic Kyoto Clinic (DEMO DATA)", "Asia/Tokyo"),
)
SITE_WEIGHTS = (5, 3, 2)
# Enrolments spread over this many days before the base date: with the 24-week schedule, about
# half the participants have finished, the rest are somewhere in their visits.
ENROLMENT_SPAN_DAYS = 420
BATCH_PARTICIPANTS = 500

FIRST_NAMES = (
    "Alex", "Brook", "Cam", "Dana", "Eli", "Fran", "Gale", "Hayden", "Indy", "Jo", "Kit", "Lee",
    "Morgan", "Noel", "Oak", "Pat", "Quinn", "Ray", "Sam", "Toni", "Uma", "Val", "Wren", "Yael",
)  # fmt: skip
LAST_NAMES = (
    "Archer", "Baker", "Carter", "Dalton", "Ellis", "Fisher", "Garcia", "Hughes", "Ito", "Jensen",
    "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka",
)  # fmt: skip
MISSED_REASONS = ("Participant unwell", "Could not travel", "Did not attend, no reason given")
DECLINE_NOTES = ("Declined after reading the information", "Moved away before enrolment")
LATE_VISIT_DAYS = 5


@dataclass
class SyntheticResult:
    rows: Counter = field(default_factory=Counter)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Staff:
    coordinator: User
    investigator: User
    monitor: User


def _q(value: float, places: str = "0.1") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_DOWN)


def _staff() -> _Staff:
    by_role = {role: email for role, email, _name in DEMO_USERS}
    users = {u.email: u for u in User.objects.filter(email__in=by_role.values())}
    return _Staff(
        coordinator=users[by_role[Role.COORDINATOR]],
        investigator=users[by_role[Role.INVESTIGATOR]],
        monitor=users[by_role[Role.MONITOR]],
    )


def synthetic_sites() -> list[Site]:
    """The demo site and the synthetic sites (created once), with every demo user a member."""
    sites = [Site.objects.get(code=DEMO_SITE_CODE)]
    for code, name, zone in SYNTHETIC_SITES:
        site = Site.objects.filter(code=code).first() or trial_services.site_create(
            actor=None,
            code=code,
            name=name,
            time_zone=zone,
            contact_email=f"research-office-{code}@demo.example.org",
            reason="synthetic demo site (seed_demo --participants)",
        )
        sites.append(site)
    for role, email, _name in DEMO_USERS:
        user = User.objects.get(email=email)
        if set(user.memberships.values_list("site_id", flat=True)) != {s.pk for s in sites}:
            trial_services.user_set_access(
                actor=None, user=user, roles=[role], sites=sites, reason="synthetic demo sites"
            )
    return sites


def _reserve_numbers(site: Site, name: str, count: int) -> int:
    """Take `count` numbers of a per-site sequence at once; returns the first. The same counter
    the services use (participants.services._next_number), so numbers are never reused."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO participants_sitesequence (site_id, name, last_value) VALUES (%s, %s, %s)
            ON CONFLICT (site_id, name) DO UPDATE SET last_value = participants_sitesequence.last_value + %s
            RETURNING last_value
            """,
            [site.pk, name, count, count],
        )
        return cursor.fetchone()[0] - count + 1


class _Batch:
    """The rows of one batch of participants, written model by model in dependency order."""

    def __init__(self):
        self.rows: dict[type, list] = {}
        self.after_insert: list[Callable[[], None]] = []

    def add(self, obj) -> None:
        self.rows.setdefault(type(obj), []).append(obj)

    def write(self, models: list[type], result: SyntheticResult) -> None:
        for model in models:
            objs = self.rows.pop(model, [])
            if objs:
                model.objects.bulk_create(objs, batch_size=2000)
                result.rows[model._meta.label] += len(objs)


class SyntheticTrial:
    """Builds and writes the synthetic data; `run()` does it all."""

    def __init__(self, *, participants: int, seed: int, base_date: dt.date, pending_reminders: int = 0):
        self.count = participants
        self.seed = seed
        self.rng = random.Random(seed)
        self.base_date = base_date
        # The moment "now" is for the data: noon UTC of the base date.
        self.now = dt.datetime.combine(base_date, dt.time(12), tzinfo=UTC)
        self.pending_reminders = pending_reminders
        self.result = SyntheticResult()
        self.measurement_type = ContentType.objects.get_for_model(UltrasoundMeasurement)
        self.fingerprint = PROTOCOL.reminders.fingerprint
        self.open_invitations: list[Invitation] = []
        self.reminder_targets: list[Invitation] = []
        self.signable: list[Visit] = []
        self.screened = 0

    # --- people ------------------------------------------------------------------------------

    def _person(self, site: Site, outcome: str, number: int) -> Screening:
        rng = self.rng
        if outcome == ScreeningOutcome.ENROLLED:
            enrolled_on = self.base_date - dt.timedelta(days=rng.randint(0, ENROLMENT_SPAN_DAYS))
            screening_date = enrolled_on - dt.timedelta(days=rng.randint(1, 14))
        else:
            enrolled_on = None
            screening_date = self.base_date - dt.timedelta(days=rng.randint(0, ENROLMENT_SPAN_DAYS + 14))
        sex = "female" if rng.random() < 0.75 else "male"  # SSc is mostly a disease of women
        age = rng.randint(25, 80)
        born = screening_date - dt.timedelta(days=age * 365 + rng.randint(0, 364))
        screening = Screening(
            site=site,
            first_name=rng.choice(FIRST_NAMES),
            last_name=f"{rng.choice(LAST_NAMES)} (synthetic)",
            date_of_birth=born,
            sex=sex,
            medical_record_number=f"{RECORD_NUMBER_PREFIX}-{self.seed}-{number:06d}",
            screening_date=screening_date,
            outcome=outcome,
        )
        screening.enrolled_on = enrolled_on  # carried in memory only
        return screening

    def _eligibility(self, screening: Screening, staff: _Staff) -> EligibilityAssessment:
        rng = self.rng
        childbearing = screening.sex == "female" and rng.random() < 0.4
        answers = {
            "diagnosis": rng.choice(("ssc", "ssc", "ssc", "mctd", "iim")),
            "diagnosis_date": str(screening.screening_date.year - rng.randint(1, 20)),
            "capable_of_consent": True,
            "calcinosis_evidence": True,
            "calcinosis_modality": rng.choice(("xray", "ultrasound")),
            "calcinosis_evidence_date": screening.screening_date - dt.timedelta(days=rng.randint(0, 120)),
            "needs_symptomatic_relief": True,
            "childbearing_potential": childbearing,
        }
        if childbearing:
            answers |= {
                "pregnancy_test_type": "urine_hcg",
                "pregnancy_test_date": screening.screening_date,
                "pregnancy_test_result": "negative",
            }
        else:
            answers["non_childbearing_reason"] = (
                "male" if screening.sex == "male" else rng.choice(("post_menopausal", "surgically_sterile"))
            )
        if screening.outcome == ScreeningOutcome.SCREEN_FAILURE:
            failing = rng.choice(("IN1", "IN4", "IN5", "EX1"))
            if failing == "IN1":
                answers["diagnosis"] = "other"
            elif failing == "IN4":
                answers |= {
                    "calcinosis_evidence": False,
                    "calcinosis_modality": "",
                    "calcinosis_evidence_date": None,
                }
            elif failing == "IN5":
                answers["needs_symptomatic_relief"] = False
            elif screening.sex == "female":
                answers |= {
                    "childbearing_potential": True,
                    "non_childbearing_reason": "",
                    "pregnancy_test_type": "urine_hcg",
                    "pregnancy_test_date": screening.screening_date,
                    "pregnancy_test_result": "positive",
                }
            else:
                answers["diagnosis"] = "other"
        assessment = EligibilityAssessment(screening=screening, **answers)
        assessment.refresh_result()
        if assessment.status == "eligible" and screening.outcome != ScreeningOutcome.ELIGIBLE:
            assessment.confirmed_by = staff.investigator
            assessment.confirmed_at = self._at(screening.screening_date, 16, screening.site.zone)
        return assessment

    def _at(self, day: dt.date, hour: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, self.rng.randint(0, 59)), tzinfo=zone).astimezone(UTC)

    # --- visits and what is recorded at them --------------------------------------------------

    def _visit_status(
        self, definition: VisitDefinition, opens, target, closes, withdrawn_after: int | None, index: int
    ):
        """(status, visit date or None, missed reason) as of the base date."""
        rng = self.rng
        if withdrawn_after is not None and index > withdrawn_after:
            return VisitStatus.PLANNED, None, ""
        base = self.base_date
        if opens > base:
            return VisitStatus.PLANNED, None, ""
        if closes < base:
            roll = rng.random()
            if definition.target_day > 0 and roll < 0.05:
                return VisitStatus.MISSED, None, rng.choice(MISSED_REASONS)
            if definition.target_day > 0 and roll < 0.07:
                return VisitStatus.PLANNED, None, ""  # overdue: nobody recorded it yet
            if definition.target_day > 0 and roll < 0.10:
                late = closes + dt.timedelta(days=rng.randint(1, LATE_VISIT_DAYS))
                if late <= base:
                    return VisitStatus.COMPLETED, late, ""
            day = target + dt.timedelta(
                days=rng.randint(-definition.window_before_days, definition.window_after_days)
            )
            return VisitStatus.COMPLETED, min(max(day, opens), closes), ""
        # The window is open today: done already, or still to come.
        if definition.target_day == 0 or rng.random() < 0.4:
            return VisitStatus.COMPLETED, opens + dt.timedelta(days=rng.randint(0, (base - opens).days)), ""
        return VisitStatus.PLANNED, None, ""

    def _lesions(self, participant: Participant, screening: Screening) -> list[Lesion]:
        rng = self.rng
        lesions = []
        for n in range(1, rng.randint(1, 6) + 1):
            site = rng.choice(AnatomicalSite.values)
            digit = phalanx = detail = ""
            if site == AnatomicalSite.HAND_DIGIT:
                digit = rng.choice(Digit.values)
                phalanx = rng.choice(
                    [Phalanx.PROXIMAL, Phalanx.DISTAL] if digit == Digit.THUMB else Phalanx.values
                )
            elif site == AnatomicalSite.OTHER:
                detail = rng.choice(("Heel", "Ear", "Shin"))
            lesion = Lesion(
                participant=participant,
                label=f"L{n}",
                anatomical_site=site,
                digit=digit,
                phalanx=phalanx,
                laterality=rng.choice((Laterality.LEFT, Laterality.RIGHT)),
                site_detail=detail,
                is_target=n <= 3,
                first_seen_on=screening.screening_date - dt.timedelta(days=rng.randint(0, 365)),
            )
            # Baseline size (mm) and how fast it shrinks per visit, in memory only.
            lesion.size = [rng.uniform(4, 30), rng.uniform(0.5, 1.0), rng.uniform(2, 10)]
            lesion.shrink = rng.uniform(0.85, 1.03)
            lesion.shadowing = rng.random() < 0.1
            lesions.append(lesion)
        return lesions

    def _measure(self, batch: _Batch, lesion: Lesion, visit: Visit, index: int) -> UltrasoundMeasurement:
        rng = self.rng
        length0, ratio, depth0 = lesion.size
        factor = lesion.shrink**index * rng.uniform(0.95, 1.05)
        length = max(_q(length0 * factor), Decimal("0.5"))
        width = max(_q(length0 * ratio * factor), Decimal("0.3"))
        measurement = UltrasoundMeasurement(
            lesion=lesion,
            visit=visit,
            length_mm=length,
            width_mm=width,
            depth_mm=None if lesion.shadowing else max(_q(depth0 * factor), Decimal("0.2")),
            depth_not_measurable_reason=DepthNotMeasurableReason.ACOUSTIC_SHADOWING
            if lesion.shadowing
            else "",
            posterior_shadowing=lesion.shadowing,
            overlying_ulceration=rng.random() < 0.1,
            doppler_signal=rng.choice(DopplerSignal.values),
            operator="Synthetic sonographer",
            device="Demo Ultrasound X1 (synthetic)",
        )
        batch.add(measurement)
        return measurement

    def _inject(self, batch: _Batch, lesions: list[Lesion], visit: Visit) -> None:
        """Injections within the protocol's dose limits: at most the per-lesion volume, and a
        session total at most the per-session dose (shared equally as the cap per lesion)."""
        rng, dosing = self.rng, PROTOCOL.dosing
        concentration = dosing.default_concentration_mg_per_ml if rng.random() < 0.8 else Decimal("150")
        session_cap_ml = dosing.max_total_dose_per_session_mg / concentration / len(lesions)
        cap = min(dosing.max_volume_per_lesion_ml, session_cap_ml)
        for lesion in lesions:
            volume = _q(rng.uniform(0.1, float(cap)), "0.01")
            batch.add(
                Injection(
                    lesion=lesion,
                    visit=visit,
                    concentration_mg_per_ml=concentration,
                    volume_ml=max(volume, Decimal("0.05")),
                    local_anaesthetic_mixed=rng.random() < 0.5,
                    needle_gauge=rng.choice(NeedleGauge.values),
                    ultrasound_guided=True,
                    immediate_pain=rng.randint(0, 8),
                )
            )

    def _answers(self, code: str, severity: float, index: int) -> dict:
        rng = self.rng
        level = max(0.0, min(1.0, severity * (1 - 0.08 * index) + rng.uniform(-0.1, 0.1)))
        answers = {}
        for item in INSTRUMENTS[code].items:
            if item.kind == ItemKind.BOOLEAN:
                answers[item.link_id] = rng.random() < 0.15
            elif item.kind == ItemKind.CHOICE:
                values = [o.value for o in item.options]
                answers[item.link_id] = values[min(len(values) - 1, int(level * len(values)))]
            else:
                answers[item.link_id] = round(item.minimum + level * (item.maximum - item.minimum))
        return answers

    def _questionnaires(
        self, batch: _Batch, participant: Participant, visit: Visit, index: int, staff: _Staff
    ) -> None:
        rng, zone = self.rng, participant.zone
        opens_at = local_datetime(visit.window_opens, PROTOCOL.reminders.send_hour_local, zone)
        if opens_at > self.now:
            return  # invitations are made when the window opens
        valid_until = end_of_day(visit.window_closes, zone)
        window_closed = valid_until < self.now
        for code in visit.definition.instruments:
            definition = INSTRUMENTS[code]
            invitation = Invitation(
                participant=participant,
                visit=visit,
                instrument_code=code,
                instrument_version=definition.version,
                status=InvitationStatus.SENT,
                opens_at=opens_at,
                valid_until=valid_until,
                sent_at=opens_at,
            )
            batch.add(invitation)
            roll = rng.random()
            answered = (
                visit.status == VisitStatus.COMPLETED and roll < 0.88 or (not window_closed and roll < 0.3)
            )
            if visit.status == VisitStatus.MISSED:
                answered = False
            if answered:
                last = min(valid_until, self.now)
                done_at = opens_at + (last - opens_at) * rng.uniform(0.05, 0.9)
                paper = rng.random() < 0.05
                answers = self._answers(code, participant.severity, index)
                invitation.status = InvitationStatus.COMPLETED
                invitation.opened_at = invitation.started_at = done_at - dt.timedelta(minutes=4)
                invitation.completed_at = done_at
                response = Response(
                    invitation=invitation,
                    instrument_code=code,
                    instrument_version=definition.version,
                    answers=answers,
                    source="paper" if paper else "patient",
                    entered_by=staff.coordinator if paper else None,
                    submitted_at=done_at,
                )
                batch.add(response)
                for name, value in definition.score(answers).items():
                    batch.add(
                        Score(
                            response=response,
                            name=name,
                            value=value,
                            instrument_code=code,
                            instrument_version=definition.version,
                        )
                    )
            elif not window_closed:
                if roll < 0.45:
                    invitation.status = InvitationStatus.OPENED
                    invitation.opened_at = opens_at + dt.timedelta(hours=2)
                self.open_invitations.append(invitation)

    def _adverse_events(
        self, batch: _Batch, participant: Participant, visits: list[Visit], staff: _Staff
    ) -> set:
        """Some participants report adverse events at completed visits; returns those visits."""
        rng = self.rng
        reported_at = set()
        if rng.random() >= 0.2:
            return reported_at
        for _n in range(rng.randint(1, 3)):
            visit = rng.choice(visits)
            grade = rng.choices((1, 2, 3, 4), weights=(60, 30, 8, 2))[0]
            serious = grade >= 3 and rng.random() < 0.5
            term_code, _label = rng.choice(EXPECTED_LOCAL_TERMS)
            batch.add(
                AdverseEvent(
                    participant=participant,
                    reported_at_visit=visit,
                    term_code=term_code,
                    grade=grade,
                    serious=serious,
                    seriousness_criteria=["hospitalisation"] if serious else [],
                    related_to_sts=rng.choice(("not_related", "unlikely", "possible", "probable")),
                    related_to_procedure=rng.choice(("unlikely", "possible", "probable", "definite")),
                    expected=True,
                    onset_date=(visit.visit_date - dt.timedelta(days=rng.randint(0, 20))).isoformat(),
                    outcome=rng.choice(("recovered", "recovering", "not_recovered")),
                    action_taken=rng.choice(("none", "none", "delayed")),
                    reported_by=staff.coordinator,
                    investigators_notified_at=visit.completed_at if serious else None,
                )
            )
            reported_at.add(id(visit))
        return reported_at

    def _query(
        self, batch: _Batch, participant: Participant, measurement: UltrasoundMeasurement, staff: _Staff
    ) -> None:
        rng = self.rng
        visit = measurement.visit
        raised_at = visit.completed_at + dt.timedelta(days=rng.randint(1, 30))
        state = rng.choice((QueryState.OPEN, QueryState.OPEN, QueryState.ANSWERED, QueryState.CLOSED))
        if raised_at > self.now:
            raised_at, state = self.now - dt.timedelta(hours=1), QueryState.OPEN
        answered_at = raised_at + dt.timedelta(hours=rng.randint(1, 72))
        answered_at = min(answered_at, self.now)
        query = Query(
            participant=participant,
            visit=visit,
            content_type=self.measurement_type,
            object_id=0,  # set once the measurement has its id
            field_name=rng.choice(("length_mm", "width_mm", "depth_mm")),
            text="Please check this value against the ultrasound report.",
            state=state,
            assignee=staff.coordinator,
            raised_by=staff.monitor,
            raised_at=raised_at,
            answer="Checked against the source: value is correct." if state != QueryState.OPEN else "",
            answered_by=staff.coordinator if state != QueryState.OPEN else None,
            answered_at=answered_at if state != QueryState.OPEN else None,
            closed_at=answered_at if state == QueryState.CLOSED else None,
        )
        batch.add(query)
        batch.after_insert.append(lambda: setattr(query, "object_id", measurement.pk))

    # --- one participant ----------------------------------------------------------------------

    def _participant(self, batch: _Batch, screening: Screening, study_id: str, staff: _Staff) -> None:
        rng, site = self.rng, screening.site
        participant = Participant(
            screening=screening,
            site=site,
            study_id=study_id,
            enrolled_on=screening.enrolled_on,
            enrolled_by=staff.coordinator,
            email=f"{study_id.lower()}@synthetic.example.org",
            time_zone=site.time_zone,
        )
        participant.severity = rng.uniform(0.2, 0.9)
        batch.add(participant)
        batch.add(
            ConsentRecord(
                screening=screening,
                document=self.document,
                consented_at=self._at(screening.screening_date, 10, site.zone),
                participant_signature=f"{screening.first_name} {screening.last_name}",
                attestation=True,
                obtained_by=staff.coordinator,
                copy_given=True,
            )
        )
        withdrawn_after = rng.randint(0, len(PROTOCOL.planned_visits) - 2) if rng.random() < 0.05 else None
        baseline = screening.enrolled_on + dt.timedelta(days=rng.randint(0, 3))
        lesions = self._lesions(participant, screening)
        for lesion in lesions:
            batch.add(lesion)
        childbearing = screening.eligibility_childbearing
        visits, completed = [], []
        for index, definition in enumerate(PROTOCOL.planned_visits):
            # Baseline planned from the enrolment date; later visits from the actual baseline.
            visit = planned_visit(
                participant=participant,
                definition=definition,
                number=index + 1,
                baseline=screening.enrolled_on if index == 0 else baseline,
            )
            status, visit_date, missed = self._visit_status(
                definition, visit.window_opens, visit.target_date, visit.window_closes, withdrawn_after, index
            )
            if index == 0 and status == VisitStatus.COMPLETED:
                visit_date = min(baseline, self.base_date)
            visit.status, visit.visit_date, visit.missed_reason = status, visit_date, missed
            if status == VisitStatus.COMPLETED:
                visit.completed_at = self._at(visit_date, 15, site.zone)
                visit.completed_by = staff.coordinator
                completed.append(visit)
            batch.add(visit)
            visits.append(visit)
            if status == VisitStatus.COMPLETED:
                active = [les for les in lesions if les.first_seen_on <= visit_date]
                for lesion in active:
                    measurement = self._measure(batch, lesion, visit, index)
                    if rng.random() < 0.03:
                        self._query(batch, participant, measurement, staff)
                if Form.INJECTIONS in definition.forms and active:
                    if childbearing:
                        batch.add(
                            PregnancyTest(
                                participant=participant,
                                visit=visit,
                                test_type="urine_hcg",
                                test_date=visit_date,
                                result="negative",
                            )
                        )
                    self._inject(batch, active, visit)
                if rng.random() < 0.1:
                    self.signable.append(visit)
            if definition.instruments and (withdrawn_after is None or index <= withdrawn_after):
                self._questionnaires(batch, participant, visit, index, staff)
        events_at = self._adverse_events(batch, participant, completed, staff) if completed else set()
        for visit in completed:
            batch.add(AEReview(visit=visit, new_events=id(visit) in events_at, reviewed_by=staff.coordinator))
        self._end_of_study(batch, participant, screening, visits, withdrawn_after, staff)

    def _end_of_study(self, batch, participant, screening, visits, withdrawn_after, staff) -> None:
        if withdrawn_after is not None:
            last = visits[withdrawn_after]
            ended_on = last.visit_date or min(last.window_closes, self.base_date)
            if ended_on > self.base_date:
                return
            participant.status = ParticipantStatus.WITHDRAWN
            participant.ended_on = max(ended_on, participant.enrolled_on)
            participant.end_reason = EndReason.WITHDREW_CONSENT
            batch.add(
                ConsentWithdrawal(
                    screening=screening,
                    withdrawn_on=participant.ended_on,
                    scope=WithdrawalScope.NO_CONTACT,
                    reason="No longer wishes to attend visits",
                    recorded_by=staff.coordinator,
                )
            )
        elif all(v.status != VisitStatus.PLANNED for v in visits):
            participant.status = ParticipantStatus.COMPLETED
            participant.ended_on = max(v.visit_date or v.window_closes for v in visits)
            participant.end_reason = EndReason.COMPLETED
        else:
            return
        # Ending the time on study stops every e-mail (participants.services.participant_end).
        self.open_invitations = [i for i in self.open_invitations if i.participant is not participant]

    # --- batches --------------------------------------------------------------------------------

    WRITE_ORDER_PEOPLE = [Screening, EligibilityAssessment, ConsentRecord, Participant]
    WRITE_ORDER_RECORDS = [
        Visit,
        Lesion,
        UltrasoundMeasurement,
        Injection,
        PregnancyTest,
        AdverseEvent,
        AEReview,
        Invitation,
        Response,
        Score,
        ConsentWithdrawal,
    ]

    def _batch(self, size: int, sites: list[Site], staff: _Staff) -> None:
        rng = self.rng
        batch = _Batch()
        people = []
        for _n in range(size):
            site = rng.choices(sites, weights=SITE_WEIGHTS[: len(sites)])[0]
            outcomes = [ScreeningOutcome.ENROLLED]
            # About one in four screened is not eligible; some eligible people decline.
            if rng.random() < 0.25:
                outcomes.append(ScreeningOutcome.SCREEN_FAILURE)
            if rng.random() < 0.08:
                outcomes.append(ScreeningOutcome.DECLINED)
            for outcome in outcomes:
                self.screened += 1
                people.append(self._person(site, outcome, self.screened))
        per_site = Counter(p.site.code for p in people)
        enrolled_per_site = Counter(p.site.code for p in people if p.outcome == ScreeningOutcome.ENROLLED)
        screening_numbers = {
            s.code: _reserve_numbers(s, "screening", per_site[s.code]) for s in sites if per_site[s.code]
        }
        study_numbers = {
            s.code: _reserve_numbers(s, "study_id", enrolled_per_site[s.code])
            for s in sites
            if enrolled_per_site[s.code]
        }
        enrolled = []
        for screening in people:
            code = screening.site.code
            screening.screening_number = f"{code}-S{screening_numbers[code]:03d}"
            screening_numbers[code] += 1
            assessment = self._eligibility(screening, staff)
            screening.eligibility_childbearing = bool(assessment.childbearing_potential)
            if screening.outcome == ScreeningOutcome.DECLINED:
                screening.outcome_note = rng.choice(DECLINE_NOTES)
            batch.add(screening)
            batch.add(assessment)
            if screening.outcome == ScreeningOutcome.ENROLLED:
                study_id = f"{code}-{study_numbers[code]:03d}"
                study_numbers[code] += 1
                enrolled.append((screening, study_id))
        for screening, study_id in enrolled:
            self._participant(batch, screening, study_id, staff)
        batch.write(self.WRITE_ORDER_PEOPLE, self.result)
        batch.write(self.WRITE_ORDER_RECORDS, self.result)
        for fix in batch.after_insert:
            fix()
        batch.write([Query], self.result)
        self._reminders(self.open_invitations)
        self.open_invitations = []

    # --- reminders, signatures, verification --------------------------------------------------------

    def _reminders(self, invitations: list[Invitation]) -> None:
        """The rows the reminder rules give each open invitation: sent when due by now, pending after."""
        rows = []
        self.reminder_targets += invitations
        for invitation in invitations:
            for row in invitation_reminders(invitation):
                if row.due_at <= self.now:
                    row.state, row.sent_at = ReminderState.SENT, row.due_at
                rows.append(row)
        Reminder.objects.bulk_create(rows, batch_size=5000)
        self.result.rows[Reminder._meta.label] += len(rows)

    def _extra_pending_reminders(self) -> None:
        """`--pending-reminders N`: N more pending reminders ("send again" rows of open
        invitations), due over the 30 days after the base date - none due at the base moment."""
        targets = self.reminder_targets
        if not targets or not self.pending_reminders:
            return
        start = dt.datetime.combine(self.base_date + dt.timedelta(days=1), dt.time(0), tzinfo=UTC)
        per_target = Counter()
        rows = []
        for n in range(self.pending_reminders):
            invitation = targets[n % len(targets)]
            sequence = 100 + per_target[invitation.pk]
            per_target[invitation.pk] += 1
            rows.append(
                Reminder(
                    key=f"inv:{invitation.pk}:{ReminderKind.REMINDER}:{sequence}",
                    kind=ReminderKind.REMINDER,
                    invitation_id=invitation.pk,
                    visit_id=invitation.visit_id,
                    site_id=invitation.participant.site_id,
                    sequence=sequence,
                    due_at=start + dt.timedelta(seconds=self.rng.randint(0, 30 * 86400)),
                    rules_fingerprint=self.fingerprint,
                )
            )
            if len(rows) >= 10000:
                Reminder.objects.bulk_create(rows)
                self.result.rows[Reminder._meta.label] += len(rows)
                rows = []
        Reminder.objects.bulk_create(rows)
        self.result.rows[Reminder._meta.label] += len(rows)

    def _signatures(self, staff: _Staff) -> None:
        """About one completed visit in ten is signed by the demo investigator, over the real
        canonical content (so the signature verifies), and some of those source-verified."""
        from trial.reports.content import sha256_of, visit_records

        rows = []
        for visit in self.signable:
            content = visit_records(visit)
            rows.append(
                Signature(
                    visit=visit,
                    signer=staff.investigator,
                    printed_name=staff.investigator.full_name,
                    signer_email=staff.investigator.email,
                    meaning=SignatureMeaning.REVIEWED_APPROVED,
                    signed_at=visit.completed_at + dt.timedelta(days=2),
                    content=content,
                    content_hash=sha256_of(content),
                    second_factor_checked=True,
                )
            )
        Signature.objects.bulk_create(rows, batch_size=1000)
        self.result.rows[Signature._meta.label] += len(rows)
        verified = [v for v in self.signable if self.rng.random() < 0.2]
        for visit in verified:
            verification_record(actor=staff.monitor, visit=visit)
        self.result.rows["data_management.Verification"] += len(verified)

    # --- all of it --------------------------------------------------------------------------------

    def run(self, progress: Callable[[str], None] | None = None) -> SyntheticResult:
        started = time.monotonic()
        staff = _staff()
        self.document = ConsentDocument.objects.order_by("effective_from", "pk").first()
        if synthetic_seeded(self.seed):
            raise ValueError(
                f"This database already has synthetic data of seed {self.seed}; use another seed or a fresh database."
            )
        reason = f"synthetic data (seed_demo --participants {self.count} --seed {self.seed} --base-date {self.base_date})"
        with audit_context(reason=reason, actor=AUDIT_ACTOR, command="seed_demo"):
            sites = synthetic_sites()
            for first in range(0, self.count, BATCH_PARTICIPANTS):
                size = min(BATCH_PARTICIPANTS, self.count - first)
                with transaction.atomic():
                    self._batch(size, sites, staff)
                if progress:
                    progress(
                        f"{first + size} of {self.count} participants ({time.monotonic() - started:.0f} s)"
                    )
            with transaction.atomic():
                self._signatures(staff)
                self._extra_pending_reminders()
        # Fresh planner statistics for the tables just filled: until autovacuum gets to them the
        # planner believes they are empty and picks plans that take minutes (profiling.md).
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        self.result.seconds = time.monotonic() - started
        return self.result


def synthetic_seeded(seed: int) -> bool:
    """Does this database already hold the synthetic data of `seed`?"""
    return Screening.objects.filter(
        medical_record_number__startswith=f"{RECORD_NUMBER_PREFIX}-{seed}-"
    ).exists()


def synthetic_seed(
    *,
    participants: int,
    seed: int,
    base_date: dt.date,
    pending_reminders: int = 0,
    progress: Callable[[str], None] | None = None,
) -> SyntheticResult:
    """Add `participants` enrolled synthetic participants (and the screenings around them) to a
    database that has the demo data (`trial.demo.demo_seed`, `participants_demo_seed`)."""
    return SyntheticTrial(
        participants=participants, seed=seed, base_date=base_date, pending_reminders=pending_reminders
    ).run(progress)
