"""Issue #10 item 5, injection and fetch: text typed into the free-text fields, holding HTML,
script, template syntax and file:// or http:// URLs, is shown as the text that was typed on every
page it appears on (staff pages, timeline, dashboard, audit history, the patient's pages), printed
literally in the PDF report without the renderer ever being asked for those URLs, and exported to
CSV with spreadsheet formulas neutralised.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client
from django.urls import reverse

from lesions.models import Lesion, UltrasoundMeasurement
from participants import safety
from participants.models import AdverseEvent, Screening
from pro_measures import invitations
from tests.conftest import sign_in
from tests.exports.conftest import (  # noqa: F401 - shared fixtures
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    data_manager,
    eligible_screening,
    frozen_today,
    investigator,
    job_rows,
    lesions,
    monitor,
    participant,
    run_export,
    screen,
    study_data,
    visit_data,
)
from tests.pro_measures.answers import invite
from tests.reports.conftest import report_text
from trial.audit import audit_context
from trial.data_management import services as dm_services
from trial.reports import pdf
from trial.reports.services import visit_report_generate

# What a hostile user types: markup that would run or fetch, template syntax that would leak the
# viewer's password hash if evaluated, and URLs a renderer could be tricked into opening.
SCRIPT = '<script>alert("edc")</script>'
FETCH = '<img src="file:///etc/passwd"><link rel="stylesheet" href="http://169.254.169.254/x.css">'
TEMPLATE = "{{ request.user.password }}{% debug %}"
PAYLOAD = f"{SCRIPT}{FETCH}{TEMPLATE} file:///etc/shadow http://127.0.0.1:1/x"
SHORT = "<b>x</b>{{ 7|add:1 }}"  # for fields of a few characters
FORMULAS = ('=HYPERLINK("http://evil.example","open")', "+1+2", "-3+4", "@SUM(A1:A9)")
# Markup that must never reach a page unescaped.
RAW = ("<script>alert(", '<img src="file:', '<link rel="stylesheet" href="http://169', "<b>x</b>")
ESCAPED = ("&lt;script&gt;alert(", "&lt;img src=", "&lt;b&gt;x&lt;/b&gt;")
URLS = ("file:///etc/passwd", "http://169.254.169.254/x.css", "file:///etc/shadow", "http://127.0.0.1:1/x")


@pytest.fixture
def hostile(study_data, completed_visit, lesions, coordinator, monitor, investigator):  # noqa: F811
    """Every free-text field of the completed baseline visit's records holds hostile text, as it
    would after the forms accepted it (they do: tests/reliability/test_fuzz_forms.py)."""
    participant = study_data  # noqa: F811
    reason = {"reason": "test data for the injection proof"}
    with audit_context(**reason):
        Screening.objects.filter(pk=participant.screening_id).update(first_name=SHORT, last_name=FORMULAS[0])
        AdverseEvent.objects.filter(participant=participant).update(term_code="other", term_text=PAYLOAD)
        Lesion.objects.filter(pk=lesions[0].pk).update(site_detail=PAYLOAD)
        UltrasoundMeasurement.objects.filter(lesion=lesions[0]).update(operator=PAYLOAD, device=FORMULAS[1])
    safety.deviation_record(
        actor=coordinator,
        site=participant.site,
        participant=participant,
        occurred_on=dt.date(2026, 11, 2),
        category="visit_window",
        description=PAYLOAD,
        corrective_action=FORMULAS[2],
    )
    query = dm_services.query_raise(
        actor=monitor, record=completed_visit, field_name="", text=PAYLOAD, suggested_value=FORMULAS[3]
    )
    dm_services.query_answer(actor=coordinator, query=query, answer=PAYLOAD)
    for user in (coordinator, monitor, investigator):
        user.full_name = f"{SHORT} {user.full_name}"
        user.save(update_fields=["full_name"])
    return participant, query


def staff_pages(participant, query, visit, lesion) -> list[str]:  # noqa: F811
    event = AdverseEvent.objects.get(participant=participant)
    measurement = UltrasoundMeasurement.objects.get(lesion=lesion)
    return [
        reverse("participants:participant-detail", args=[participant.pk]),
        reverse("participant-timeline", args=[participant.pk]),
        reverse("participants:visit-detail", args=[visit.pk]),
        reverse("lesions:visit-table", args=[visit.pk]),
        reverse("lesions:lesion-list", args=[participant.pk]),
        reverse("lesions:lesion-edit", args=[lesion.pk]),
        reverse("participants:adverse-event-list", args=[participant.pk]),
        reverse("participants:adverse-event-detail", args=[event.pk]),
        reverse("participants:adverse-event-edit", args=[event.pk]),
        reverse("participants:deviation-list"),
        reverse("participants:screening-detail", args=[participant.screening_id]),
        reverse("participants:screening-list"),
        reverse("participants:participant-list"),
        reverse("participants:screening-log"),
        reverse("participants:today"),
        reverse("dashboard"),
        reverse("data_management:query-list"),
        reverse("data_management:query-detail", args=[query.pk]),
        reverse("signatures:queue"),
        reverse("record-history", args=["participants.adverseevent", event.pk]),
        reverse("record-history", args=["lesions.lesion", lesion.pk]),
        reverse("record-history", args=["lesions.ultrasoundmeasurement", measurement.pk]),
        reverse("record-history", args=["participants.screening", participant.screening_id]),
        reverse("pro_measures:invitation-list", args=[participant.pk]),
        reverse("user-list"),
    ]


def assert_shown_as_text(body: str, url: str) -> bool:
    """No hostile markup reaches the page; returns whether the page shows the typed text."""
    for raw in RAW:
        assert raw not in body, f"{url}: {raw!r} reached the page unescaped"
    assert "md5$" not in body and "argon2" not in body, f"{url}: template syntax was evaluated"
    return any(escaped in body for escaped in ESCAPED)


def test_hostile_text_is_shown_escaped_on_every_staff_page(
    hostile,
    completed_visit,  # noqa: F811
    lesions,  # noqa: F811
    coordinator,  # noqa: F811
    investigator,  # noqa: F811
    monitor,  # noqa: F811
    data_manager,  # noqa: F811
    make_user,  # noqa: F811
):
    from trial.roles import Role

    participant, query = hostile  # noqa: F811
    admin = make_user(role=Role.ADMINISTRATOR, sites=[participant.site])
    urls = staff_pages(participant, query, completed_visit, lesions[0])
    showing = set()
    for user in (coordinator, investigator, monitor, data_manager, admin):
        client = sign_in(Client(), user)
        for url in urls:
            response = client.get(url)
            if response.status_code in (403, 404):  # not this role's page (the access matrix's job)
                continue
            assert response.status_code == 200, (url, user.email)
            if assert_shown_as_text(response.content.decode(), url):
                showing.add(url)
    # The pages whose point is the hostile records show the typed text itself (escaped).
    must_show = {
        reverse("participants:adverse-event-detail", args=[AdverseEvent.objects.get().pk]),
        reverse("lesions:lesion-list", args=[participant.pk]),
        reverse("participants:deviation-list"),
        reverse("data_management:query-detail", args=[query.pk]),
        reverse("record-history", args=["participants.adverseevent", AdverseEvent.objects.get().pk]),
        reverse("lesions:visit-table", args=[completed_visit.pk]),
        reverse("participants:screening-detail", args=[participant.screening_id]),
    }
    assert must_show <= showing, must_show - showing


def test_patient_pages_show_the_site_and_study_as_text(hostile, coordinator):  # noqa: F811
    participant, _query = hostile  # noqa: F811
    site = participant.site
    site.name = f"{SHORT} clinic"
    site.save(update_fields=["name"])
    token = invitations.link_create(invite(participant.visits.get(code="W0"), "pain_nrs"))
    client = Client(REMOTE_ADDR="10.250.0.9")
    for url in (
        reverse("pro_measures:questionnaire", args=[token]),
        reverse("pro_measures:questionnaire-page", args=[token, 1]),
    ):
        response = client.get(url)
        assert response.status_code == 200
        assert_shown_as_text(response.content.decode(), url)


def test_the_pdf_prints_hostile_text_and_never_asks_for_its_urls(hostile, completed_visit, monkeypatch):  # noqa: F811
    asked: list[str] = []
    real_fetch = pdf.SafeFetcher.fetch

    def recording_fetch(self, url, headers=None):
        asked.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(pdf.SafeFetcher, "fetch", recording_fetch)
    report = visit_report_generate(visit_id=completed_visit.pk)
    assert asked, "the report names its own stylesheet and chart: the fetcher is in use"
    assert all(url.startswith(("edc-asset:", "edc-static:")) for url in asked), asked
    text = re.sub(r"\s+", "", report_text(report))
    for typed in (SCRIPT, FETCH, TEMPLATE, *URLS[2:]):
        assert re.sub(r"\s+", "", typed) in text, typed
    assert "root:x:0:0" not in text


def assert_no_formula_cells(rows: list[list[str]]) -> int:
    neutralised = 0
    for row in rows:
        for cell in row:
            if cell.startswith(("=", "+", "-", "@")):
                assert re.fullmatch(r"[+-]?\d+(\.\d+)?", cell), f"formula cell {cell!r}"
            neutralised += cell.startswith("'") and cell[1:].startswith(("=", "+", "-", "@"))
    return neutralised


@pytest.mark.parametrize(
    ("kind", "parameters"),
    [
        ("csv_long", {}),
        ("csv_wide", {"form": "ULTRASOUNDMEASUREMENT"}),
        ("csv_wide", {"form": "PROTOCOLDEVIATION"}),
        ("audit_trail", {}),
    ],
)
def test_csv_exports_neutralise_formulas(kind, parameters, hostile, data_manager, run_export):  # noqa: F811
    job = run_export(data_manager, kind, **parameters)
    assert job.status == "done", job.status
    rows = [list(row.values()) for row in job_rows(job)]
    assert assert_no_formula_cells(rows) >= 1
