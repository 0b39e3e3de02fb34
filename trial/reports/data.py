"""What a visit report shows, gathered into plain, JSON-able values (strings, numbers, lists).

The PDF template renders this dict and nothing else, and its SHA-256 (`trial.reports.content`) is
the report's content hash: two reports of the same data have the same hash, whenever they were
made. The generation time is deliberately not in it (it is in the footer only).

No direct identifiers (DOMAIN.md s.8): the participant appears by study id only; staff appear by
their printed name (who entered and who signed are part of the record).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils.translation import gettext as _

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from lesions.outcomes import Change, participant_outcome
from participants.models import AdverseEvent, AEReview, PregnancyTest, Visit
from pro_measures.models import Response, Score
from trial.audit import DELETE, INSERT, event_model_for
from trial.protocol import PROTOCOL, Form
from trial.reports.content import record_event_sources


def _number(value: Decimal | None, places: int = 1) -> str:
    return "—" if value is None else f"{value:.{places}f}"


def _signed(value: Decimal | None, suffix: str = "") -> str:
    return "—" if value is None else f"{value:+.1f}{suffix}"


def _change(change: Change, *, baseline: bool) -> dict[str, str]:
    if baseline:
        return {"value": _number(change.value), "absolute": _("baseline"), "percent": _("baseline")}
    return {
        "value": _number(change.value),
        "absolute": _signed(change.absolute),
        "percent": _signed(change.percent, " %"),
    }


def window_status(visit: Visit) -> str:
    if visit.visit_date is None:
        return str(visit.get_status_display())
    if visit.visit_date < visit.window_opens:
        days = (visit.window_opens - visit.visit_date).days
        return _("Outside the window: %(days)d day(s) early") % {"days": days}
    if visit.visit_date > visit.window_closes:
        days = (visit.visit_date - visit.window_closes).days
        return _("Outside the window: %(days)d day(s) late") % {"days": days}
    return _("Within the window")


def _header(visit: Visit) -> dict[str, Any]:
    participant = visit.participant
    return {
        "study": settings.STUDY_NAME,
        "site": f"{participant.site.code} {participant.site.name}",
        "site_time_zone": participant.site.time_zone,
        "study_id": participant.study_id,
        "visit": f"{visit.code} — {visit.name}",
        "visit_status": str(visit.get_status_display()),
        "visit_date": visit.visit_date.isoformat() if visit.visit_date else "—",
        "window": f"{visit.window_opens.isoformat()} – {visit.window_closes.isoformat()}",
        "target_date": visit.target_date.isoformat(),
        "window_status": window_status(visit),
        "protocol_version": PROTOCOL.version,
        "planned_under_protocol_version": visit.protocol_version,
    }


def _lesions(visit: Visit) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Per-lesion measurements at this visit with change from baseline, and the trend series up to
    and including this visit (a report of W4 does not change when W8 is measured)."""
    measured = {
        m.lesion_id: m for m in UltrasoundMeasurement.objects.filter(visit=visit).select_related("lesion")
    }
    outcome = participant_outcome(visit.participant_id)
    lesions = {lesion.pk: lesion for lesion in Lesion.objects.filter(participant_id=visit.participant_id)}
    rows = []
    codes: dict[int, str] = {}
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for trajectory in outcome.lesions:
        for index, point in enumerate(trajectory.points):
            if point.visit_sequence > visit.sequence:
                continue
            codes[point.visit_sequence] = point.visit_code
            if point.longest_diameter.value is not None:
                series[trajectory.label][point.visit_sequence] = float(point.longest_diameter.value)
            if point.visit_sequence != visit.sequence:
                continue
            m = measured[trajectory.lesion_id]
            rows.append(
                {
                    "label": trajectory.label,
                    "target": trajectory.is_target,
                    "location": lesions[trajectory.lesion_id].location,
                    "length_mm": _number(m.length_mm),
                    "width_mm": _number(m.width_mm),
                    "depth_mm": _number(m.depth_mm)
                    if m.depth_mm is not None
                    else str(m.get_depth_not_measurable_reason_display()),
                    "doppler": str(m.get_doppler_signal_display()),
                    "operator": m.operator,
                    "device": m.device,
                    "diameter": _change(point.longest_diameter, baseline=index == 0),
                    "volume": _change(point.volume, baseline=index == 0),
                }
            )
    sequences = sorted(codes)
    trend = {
        "x_labels": [codes[s] for s in sequences],
        "series": [
            {"label": label, "values": [values.get(s) for s in sequences]}
            for label, values in sorted(series.items())
        ],
    }
    return rows, trend


def _injections(visit: Visit) -> dict[str, Any]:
    rows = list(Injection.objects.filter(visit=visit).select_related("lesion").order_by("lesion__label"))
    return {
        "rows": [
            {
                "label": i.lesion.label,
                "concentration": _number(i.concentration_mg_per_ml),
                "volume_ml": _number(i.volume_ml, 2),
                "dose_mg": _number(i.dose_mg, 2),
                "needle": str(i.get_needle_gauge_display()),
                "local_anaesthetic": _("Yes") if i.local_anaesthetic_mixed else _("No"),
                "immediate_pain": i.immediate_pain,
                "complications": ", ".join(
                    str(dict(i._meta.get_field("immediate_complications").base_field.flatchoices).get(c, c))
                    for c in i.immediate_complications
                )
                or _("None"),
                "complication_detail": i.complication_detail,
            }
            for i in rows
        ],
        "total_volume_ml": _number(sum((i.volume_ml for i in rows), Decimal(0)), 2),
        "total_dose_mg": _number(sum((i.dose_mg for i in rows), Decimal(0)), 2),
    }


def _pregnancy(visit: Visit) -> dict[str, Any] | None:
    tests = list(PregnancyTest.objects.filter(visit=visit).order_by("test_date", "pk"))
    if not tests and Form.PREGNANCY_TEST not in visit.definition.forms:
        return None
    return {
        "expected": Form.PREGNANCY_TEST in visit.definition.forms,
        "rows": [
            {
                "test": str(t.get_test_type_display()),
                "date": t.test_date.isoformat(),
                "result": str(t.get_result_display()),
            }
            for t in tests
        ],
    }


def _adverse_events(visit: Visit) -> dict[str, Any]:
    events = AdverseEvent.objects.filter(reported_at_visit=visit).order_by("pk")
    review = AEReview.objects.filter(visit=visit).first()
    return {
        "review": None
        if review is None
        else (
            _("New adverse events since the last visit") if review.new_events else _("No new adverse events")
        ),
        "rows": [
            {
                "term": e.term,
                "grade": e.grade,
                "ctcae": e.get_ctcae_version_display(),
                "serious": _("Serious") if e.serious else _("Not serious"),
                "related_to_sts": str(e.get_related_to_sts_display()),
                "related_to_procedure": str(e.get_related_to_procedure_display()),
                "onset": str(e.onset_date),
                "outcome": str(e.get_outcome_display()),
                "action_taken": str(e.get_action_taken_display()),
                "description": e.description,
            }
            for e in events
        ],
    }


def _pro_scores(visit: Visit) -> list[dict[str, Any]]:
    scores = Score.objects.filter(response__invitation__visit=visit).select_related("response")
    return [
        {
            "instrument": s.instrument_code,
            "version": s.instrument_version,
            "score": s.name,
            "value": "—" if s.value is None else f"{s.value.normalize():f}",
            "submitted_at": s.response.submitted_at.isoformat() if s.response.submitted_at else "—",
        }
        for s in scores.order_by("instrument_code", "name")
    ]


def _entries(visit: Visit) -> list[dict[str, Any]]:
    """Who entered what and when, from the audit trail's event tables (not from the rows, which
    keep only the last state). Queries: one per source plus one for the users."""
    raw = []
    for model, lookup in record_event_sources():
        event_model = event_model_for(model)
        fields = [
            f
            for f in model._meta.concrete_fields
            if not f.primary_key
            and f.name not in ("row_version",)
            and f.name in {ef.name for ef in event_model._meta.concrete_fields}
        ]
        previous: dict[int, Any] = {}
        for event in event_model.objects.filter(**{lookup: visit.pk}).order_by("pgh_id"):
            before = previous.get(event.pgh_obj_id)
            if event.pgh_label == INSERT or before is None:
                changed = []
            elif event.pgh_label == DELETE:
                changed = []
            else:
                changed = [
                    str(f.verbose_name)
                    for f in fields
                    if getattr(before, f.attname) != getattr(event, f.attname)
                ]
            previous[event.pgh_obj_id] = event
            if event.pgh_label not in (INSERT, DELETE) and not changed:
                continue
            raw.append((event, model, changed))
    user_ids = {(e.pgh_context or {}).get("user") for e, _m, _c in raw} - {None}
    user_model = apps.get_model(settings.AUTH_USER_MODEL)
    names = {u.pk: u.full_name or u.email for u in user_model._base_manager.filter(pk__in=user_ids)}
    words = {INSERT: _("Entered"), DELETE: _("Deleted")}
    lesion_labels = dict(
        Lesion.objects.filter(participant_id=visit.participant_id).values_list("pk", "label")
    )
    entries = []
    for event, model, changed in sorted(raw, key=lambda item: (item[0].pgh_created_at, item[0].pgh_id)):
        ctx = event.pgh_context or {}
        who = names.get(ctx.get("user")) or str(ctx.get("actor") or _("system"))
        what = str(model._meta.verbose_name)
        label = _record_label(model, event, lesion_labels)
        entries.append(
            {
                "at": event.pgh_created_at.isoformat(timespec="seconds"),
                "who": who,
                "action": str(words.get(event.pgh_label, _("Changed"))),
                "what": f"{what} {label}".strip(),
                "fields": ", ".join(changed),
                "reason": ctx.get("reason") or "",
            }
        )
    return entries


def _record_label(model, event, lesion_labels: dict[int, str]) -> str:
    if model in (UltrasoundMeasurement, Injection):
        return lesion_labels.get(event.lesion_id, "")
    if model is Score:
        return event.name
    if model is Response:
        return event.instrument_code
    if model is AdverseEvent:
        return event.term_text or str(
            dict(AdverseEvent._meta.get_field("term_code").flatchoices).get(event.term_code, "")
        )
    return ""


def report_data(visit: Visit, *, signatures: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the report of `visit` shows, except the generation time."""
    visit = Visit.objects.select_related("participant__site").get(pk=visit.pk)
    measurements, trend = _lesions(visit)
    return {
        "header": _header(visit),
        "measurements": measurements,
        "trend": trend,
        "injections": _injections(visit),
        "pregnancy": _pregnancy(visit),
        "adverse_events": _adverse_events(visit),
        "pro_scores": _pro_scores(visit),
        "entries": _entries(visit),
        "signatures": signatures,
    }
