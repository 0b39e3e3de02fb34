"""A participant's timeline: visits and the forms each expects (done or missing), the state of each
visit's questionnaires, the change from baseline in lesion size and in the questionnaire scores.

A read-side page (ARCHITECTURE.md "Who owns what"): it combines participants, lesions and
pro_measures, so it lives in trial's top part, which imports every app and is imported by none.
It gathers everything in a fixed number of queries, whatever the number of visits, and hands the
template prepared rows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import TemplateView

from lesions.models import DicomFile, DicomStatus
from lesions.outcomes import Change, participant_outcome
from participants.models import ParticipantStatus, Visit, VisitState
from participants.visit_views import (
    Badge,
    FormStatus,
    ParticipantScopedMixin,
    childbearing_potential,
    form_statuses,
    visit_badge,
    with_form_data,
)
from pro_measures.instruments import INSTRUMENTS
from pro_measures.models import Invitation, InvitationStatus, Score
from pro_measures.staff_views import score_text
from trial.locks import lock_in_force
from trial.protocol import FORM_LABELS, PROTOCOL, Form

# --- Lesion size: change from baseline --------------------------------------------------------------


def signed(value: Decimal | None, suffix: str = "") -> str:
    return "—" if value is None else f"{value:+.1f}{suffix}"


def plain(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:.1f}"


@dataclass(frozen=True)
class ChangeCells:
    value: str
    absolute: str
    percent: str

    @classmethod
    def of(cls, change: Change, *, baseline: bool = False) -> ChangeCells:
        if baseline:
            word = _("baseline")
            return cls(plain(change.value), word, word)
        return cls(plain(change.value), signed(change.absolute), signed(change.percent, " %"))


@dataclass(frozen=True)
class OutcomeRow:
    heading: str
    visit_code: str
    is_target: bool
    diameter: ChangeCells
    volume: ChangeCells


# --- Questionnaires per visit ---------------------------------------------------------------------------


class QuestionnaireProgress:
    DONE = "done"
    OPEN = "open"  # sent (or about to be) and still answerable
    MISSING = "missing"  # due, but there is no invitation
    EXPIRED = "expired"  # the window closed before it was answered
    REVOKED = "revoked"
    NOT_YET_DUE = "not_yet_due"
    VISIT_MISSED = "visit_missed"


QUESTIONNAIRE_BADGES = {
    QuestionnaireProgress.DONE: (gettext_lazy("Done"), "text-bg-success"),
    QuestionnaireProgress.OPEN: (gettext_lazy("Open"), "text-bg-primary"),
    QuestionnaireProgress.MISSING: (gettext_lazy("Missing"), "text-bg-danger"),
    QuestionnaireProgress.EXPIRED: (gettext_lazy("Expired"), "text-bg-warning"),
    QuestionnaireProgress.REVOKED: (gettext_lazy("Revoked"), "text-bg-dark"),
    QuestionnaireProgress.NOT_YET_DUE: (gettext_lazy("Not yet due"), "text-bg-secondary"),
    QuestionnaireProgress.VISIT_MISSED: (gettext_lazy("Not done: visit missed"), "text-bg-secondary"),
}
# The visit's summary: the first of these that any of its questionnaires is in.
SUMMARY_ORDER = (
    QuestionnaireProgress.OPEN,
    QuestionnaireProgress.MISSING,
    QuestionnaireProgress.EXPIRED,
    QuestionnaireProgress.REVOKED,
    QuestionnaireProgress.NOT_YET_DUE,
    QuestionnaireProgress.VISIT_MISSED,
)


def _badge(progress: str) -> Badge:
    label, css = QUESTIONNAIRE_BADGES[progress]
    return Badge(str(label), css)


@dataclass(frozen=True)
class QuestionnaireStatus:
    code: str
    title: str
    progress: str
    badge: Badge
    detail: str = ""
    invitation_id: int | None = None


def questionnaire_statuses(
    visit: Visit, invitations: list[Invitation], *, today: dt.date, now: dt.datetime
) -> list[QuestionnaireStatus]:
    """Each questionnaire the visit expects (and any other it has an invitation for): done, open,
    missing, expired or revoked; not yet due before the window, not done when the visit was missed."""
    by_code = {invitation.instrument_code: invitation for invitation in invitations}
    expected = list(visit.definition.instruments)
    codes = expected + sorted(code for code in by_code if code not in expected)
    state = visit.state_on(today)
    statuses = []
    for code in codes:
        definition = INSTRUMENTS.get(code)
        title = str(definition.title) if definition else code
        invitation = by_code.get(code)
        detail = ""
        if invitation is None:
            if state == VisitState.PLANNED:
                progress = QuestionnaireProgress.NOT_YET_DUE
            elif state == VisitState.MISSED:
                progress = QuestionnaireProgress.VISIT_MISSED
            else:
                progress = QuestionnaireProgress.MISSING
        else:
            status = invitation.status_at(now)
            if status == InvitationStatus.COMPLETED:
                progress = QuestionnaireProgress.DONE
            elif status == InvitationStatus.EXPIRED:
                progress = QuestionnaireProgress.EXPIRED
            elif status == InvitationStatus.REVOKED:
                progress = QuestionnaireProgress.REVOKED
            else:
                progress = QuestionnaireProgress.OPEN
                detail = str(InvitationStatus(status).label).lower()
        statuses.append(
            QuestionnaireStatus(
                code, title, progress, _badge(progress), detail, invitation.pk if invitation else None
            )
        )
    return statuses


def with_questionnaires(form: FormStatus, statuses: list[QuestionnaireStatus]) -> FormStatus:
    """The visit's "Questionnaires" form, summarised from its questionnaires' states."""
    if not statuses:
        return form
    done = sum(1 for s in statuses if s.progress == QuestionnaireProgress.DONE)
    if done == len(statuses):
        progress = QuestionnaireProgress.DONE
    else:
        present = {s.progress for s in statuses}
        progress = next(p for p in SUMMARY_ORDER if p in present)
    detail = _("%(done)s of %(total)s done") % {"done": done, "total": len(statuses)}
    return replace(form, progress=progress, badge=_badge(progress), detail=detail)


def _questionnaires_form() -> FormStatus:
    progress = QuestionnaireProgress.NOT_YET_DUE
    return FormStatus(Form.PROS, str(FORM_LABELS[Form.PROS]), progress, _badge(progress))


@dataclass(frozen=True)
class TimelineRow:
    visit: Visit
    badge: Badge
    forms: list[FormStatus]
    questionnaires: list[QuestionnaireStatus]
    images: list = field(default_factory=list)  # ready DicomFiles of the visit (thumbnails)

    @property
    def lists_questionnaires(self) -> bool:
        """One line per questionnaire once any was sent; before that the summary says it all."""
        return any(q.invitation_id for q in self.questionnaires)


# --- Questionnaire scores: change from baseline ---------------------------------------------------------


def signed_score(value: Decimal) -> str:
    text = format(value.normalize(), "+f")
    return "0" if text in ("+0", "-0") else text


@dataclass(frozen=True)
class ScorePoint:
    visit_code: str
    value: str
    change: str
    is_baseline: bool


@dataclass(frozen=True)
class ScoreTrajectory:
    name: str
    label: str
    lower_is_better: bool
    points: list[ScorePoint]


def score_trajectories(participant_id: int) -> list[ScoreTrajectory]:
    """Every questionnaire score of the participant by visit, with the absolute change from the
    value at the protocol's baseline visit (W0; no baseline value: no change). One query."""
    baseline_code = PROTOCOL.planned_visits[0].code
    rows = (
        Score.objects.filter(response__invitation__participant_id=participant_id)
        .order_by("response__invitation__visit__sequence", "name")
        .values_list("name", "value", "response__invitation__visit__code")
    )
    by_name: dict[str, list[tuple[str, Decimal | None]]] = defaultdict(list)
    for name, value, visit_code in rows:
        by_name[name].append((visit_code, value))
    trajectories = []
    for definition in INSTRUMENTS.values():
        for score in definition.scores:
            points = by_name.pop(score.name, None)
            if not points:
                continue
            baseline = next((value for code, value in points if code == baseline_code), None)
            trajectories.append(
                ScoreTrajectory(
                    score.name,
                    str(score.label),
                    score.lower_is_better,
                    [
                        ScorePoint(
                            code,
                            score_text(value),
                            _("baseline")
                            if code == baseline_code
                            else "—"
                            if value is None or baseline is None
                            else signed_score(value - baseline),
                            code == baseline_code,
                        )
                        for code, value in points
                    ],
                )
            )
    return trajectories


# --- The page -------------------------------------------------------------------------------------------


class ParticipantTimelineView(ParticipantScopedMixin, TemplateView):
    permission_required = "participants.view_visit"
    template_name = "trial/timeline.html"

    def get_context_data(self, **kwargs):
        participant, today, user, now = self.participant, self.today, self.request.user, timezone.now()
        childbearing = childbearing_potential(participant)
        visits = with_form_data(participant.visits.order_by("sequence"))
        can_view_questionnaires = user.has_perm("pro_measures.view_invitation")
        invitations: dict[int, list[Invitation]] = defaultdict(list)
        if can_view_questionnaires:
            for invitation in Invitation.objects.filter(participant=participant):
                invitations[invitation.visit_id].append(invitation)
        # Ultrasound thumbnails: one query for the participant's ready, de-identified images.
        images: dict[int, list[DicomFile]] = defaultdict(list)
        if user.has_perm("lesions.view_dicomfile"):
            for dicom_file in (
                DicomFile.objects.filter(visit__participant=participant, status=DicomStatus.READY)
                .select_related("lesion")
                .order_by("lesion__label", "uploaded_at")
            ):
                images[dicom_file.visit_id].append(dicom_file)
        rows = []
        for visit in visits:
            forms = form_statuses(visit, today=today, childbearing=childbearing)
            questionnaires = []
            if can_view_questionnaires:
                questionnaires = questionnaire_statuses(visit, invitations[visit.pk], today=today, now=now)
                if questionnaires and not any(f.form == Form.PROS for f in forms):
                    # Invitations at a visit whose definition expects none (e.g. after a protocol
                    # change): shown all the same, so no answer is hidden.
                    forms.append(_questionnaires_form())
                forms = [with_questionnaires(f, questionnaires) if f.form == Form.PROS else f for f in forms]
            rows.append(
                TimelineRow(visit, visit_badge(visit, today), forms, questionnaires, images[visit.pk])
            )
        outcome = participant_outcome(participant.pk)
        lesion_rows = [
            OutcomeRow(
                trajectory.label,
                point.visit_code,
                trajectory.is_target,
                ChangeCells.of(point.longest_diameter, baseline=index == 0),
                ChangeCells.of(point.volume, baseline=index == 0),
            )
            for trajectory in outcome.lesions
            for index, point in enumerate(trajectory.points)
        ]
        total_rows = [
            OutcomeRow(
                point.visit_code,
                point.visit_code,
                True,
                ChangeCells.of(point.sum_longest_diameter, baseline=index == 0),
                ChangeCells.of(point.sum_volume, baseline=index == 0),
            )
            for index, point in enumerate(outcome.totals)
        ]
        can_view_scores = user.has_perm("pro_measures.view_score")
        return super().get_context_data(
            rows=rows,
            today=today,
            childbearing=childbearing,
            lesion_rows=lesion_rows,
            total_rows=total_rows,
            targets_flagged=any(t.is_target for t in outcome.lesions),
            can_add_visit=user.has_perm("participants.change_visit")
            and participant.status == ParticipantStatus.ON_STUDY
            and lock_in_force(participant=participant) is None,
            can_view_adverse_events=user.has_perm("participants.view_adverseevent"),
            can_view_questionnaires=can_view_questionnaires,
            can_view_scores=can_view_scores,
            score_rows=score_trajectories(participant.pk) if can_view_scores else [],
            baseline_visit=PROTOCOL.planned_visits[0].code,
            **kwargs,
        )


urlpatterns = [
    path("participants/<int:pk>/timeline/", ParticipantTimelineView.as_view(), name="participant-timeline"),
]
