"""Issue #10 item 6: 50 coordinators and 200 patients for 60 s against gunicorn on loopback.

Coordinators open a visit's measurement table and save a re-measured lesion (each has a visit of
their own, so no save meets a conflict); patients answer their e-mailed questionnaires page by page
and submit them. Afterwards: no request failed, and every accepted submission is in the database -
one audited measurement change per accepted table save, every accepted page's answers saved as
posted under its link, one completed questionnaire per accepted submit - and nothing else.

The server is bench.server's gunicorn (2 sync workers, production settings, plain HTTP) against
this test's database; the simulated users are bench.traffic's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bench.environment import bench_environment
from bench.pages import questionnaire_open, questionnaire_page_post, questionnaire_submit, table_save
from bench.questionnaires import page_post, patient_link
from bench.server import gunicorn
from bench.sessions import staff_session_cookie
from bench.traffic import Stats, UserGroup, simulate_users
from lesions import services as lesion_services
from lesions.models import UltrasoundMeasurement
from participants import services
from pro_measures.instruments import INSTRUMENTS
from pro_measures.invitations import token_hash
from pro_measures.models import Invitation, InvitationStatus, Response
from pro_measures.patient_forms import NO, YES
from tests.conftest import RUNTIME_ROLE
from tests.factories import pdf_upload
from tests.lesions.conftest import measurement
from tests.participants.test_visit_views import enrol
from tests.trial.test_dashboard import target_lesion
from tests.worker import database_url
from trial.audit import audit_context, event_model_for
from trial.roles import Role

pytestmark = [pytest.mark.load, pytest.mark.django_db(transaction=True)]

COORDINATORS = 50
PATIENTS = 200
SECONDS = 60


def open_invitations(participant) -> list[Invitation]:
    """Every questionnaire of every visit, sent and open now (as if each window had opened)."""
    now = timezone.now()
    with audit_context(reason="load test: questionnaires open"):
        return Invitation.objects.bulk_create(
            Invitation(
                participant=participant,
                visit=visit,
                instrument_code=code,
                instrument_version=INSTRUMENTS[code].version,
                status=InvitationStatus.SENT,
                sent_at=now,
                opens_at=now - dt.timedelta(hours=1),
                valid_until=now + dt.timedelta(days=7),
            )
            for visit in participant.visits.all()
            for code in visit.definition.instruments
        )


@pytest.fixture
def trial_population(site_a, make_user):
    """50 coordinators, each with a visit of their own whose lesion was measured before, and 200
    patients with two or more open questionnaires each (one to eight pages) and a link to each."""
    investigator = make_user(role=Role.INVESTIGATOR, sites=[site_a])
    coordinator = make_user(role=Role.COORDINATOR, sites=[site_a])
    document = services.consent_document_add(
        actor=investigator,
        version="1.0",
        language="en",
        title="Consent",
        approved_on=dt.date(2026, 1, 1),
        effective_from=dt.date(2026, 1, 1),
        document=pdf_upload(),
    )
    today = timezone.localdate(timezone=site_a.zone)

    def enrolled():
        return enrol(
            coordinator=coordinator, investigator=investigator, document=document, site=site_a, day=today
        )

    visits = []
    while len(visits) < COORDINATORS:
        participant = enrolled()
        lesion = target_lesion(coordinator, participant)
        for visit in participant.visits.all():
            lesion_services.visit_lesions_save(
                actor=coordinator,
                visit=visit,
                rows=[lesion_services.LesionRow(lesion, measurement=measurement())],
            )
            visits.append(visit)
    coordinators = [
        (staff_session_cookie(make_user(role=Role.COORDINATOR, sites=[site_a]), site_a), visit.pk)
        for visit in visits[:COORDINATORS]
    ]
    links = []
    while len(links) < 2 * PATIENTS:
        links += [
            (patient_link(invitation), invitation.instrument_code)
            for invitation in open_invitations(enrolled())
        ]
    # Short questionnaires first: on a busy machine a patient may get through only a few pages.
    links.sort(key=lambda link: len(INSTRUMENTS[link[1]].sections))
    patients = [links[n::PATIENTS] for n in range(PATIENTS)]
    return coordinators, patients


def coordinator_scenario(visit_id: int):
    async def scenario(client, number, record):
        page, save = await table_save(client, visit_id, number)
        record("table page", page)
        record("table save", save)

    return scenario


def patient_scenario(links: list[tuple[str, str]], accepted: dict[str, dict], submitted: set[str]):
    """The patient's questionnaires one after another: each call answers the next page or, after
    the last page, submits; with nothing left to answer, the patient waits. One step per call, so
    that the minute's end stops a patient between two pages. The first page is opened (for the
    form's CSRF token); after that the patient posts straight on, as a busy machine allows few
    requests per user in a minute. What the server accepted goes into `accepted` (answers by
    token) and `submitted` (tokens)."""
    steps = [
        (token, page, section)
        for token, code in links
        for page, section in [*enumerate(INSTRUMENTS[code].sections, start=1), (None, None)]
    ]

    async def scenario(client, number, record):
        if not steps:
            await asyncio.sleep(1)
            return
        token, page, section = steps.pop(0)
        if page is None:
            sample = await questionnaire_submit(client, token)
            record("questionnaire submit", sample)
            if sample.ok:
                submitted.add(token)
            return
        url = f"/q/{token}/{page}/"
        if getattr(client, "bench_csrf", None) is None:
            record("questionnaire page", await questionnaire_open(client, url))
        answers = page_post(section, number)
        sample = await questionnaire_page_post(client, url, answers)
        record("questionnaire answer", sample)
        if sample.ok:
            answers.pop("section")
            accepted.setdefault(token, {}).update(answers)

    return scenario


def saved_answers(token: str) -> dict[str, str]:
    """The answers saved under a link, as the form posts them."""
    response = Response.objects.filter(invitation__links__token_hash=token_hash(token)).first()
    answers = response.answers if response else {}
    return {
        key: (YES if value else NO) if isinstance(value, bool) else str(value)
        for key, value in answers.items()
    }


def test_250_users_for_60_seconds_lose_nothing(trial_population, tmp_path):
    coordinators, patients = trial_population
    measurement_events = event_model_for(UltrasoundMeasurement)
    events_before = measurement_events.objects.count()
    assert not Response.objects.exists()

    env = bench_environment(
        connection.settings_dict["NAME"],
        DJANGO_SETTINGS_MODULE="trial.settings",
        # As the site connects: the runtime role this test run made (tests/conftest.py).
        DATABASE_URL=database_url({**connection.settings_dict, "USER": RUNTIME_ROLE}),
        SECRET_KEY=settings.SECRET_KEY,  # the sessions were signed with it
        REDIS_URL=settings.REDIS_URL,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        STATIC_ROOT=str(settings.STATIC_ROOT),
        STATIC_MANIFEST="false",
        # A home of its own: the server must leave nothing there (no control socket that another
        # gunicorn of the same user would take over; trial.gunicorn_conf).
        HOME=str(tmp_path / "home"),
    )
    accepted: dict[str, dict] = {}
    submitted: set[str] = set()
    groups = [
        *(
            UserGroup("coordinator", coordinator_scenario(visit_id), [cookies])
            for cookies, visit_id in coordinators
        ),
        *(UserGroup("patient", patient_scenario(links, accepted, submitted), [{}]) for links in patients),
    ]
    with gunicorn(env, tmp_path / "gunicorn.log") as server:
        by_step = asyncio.run(simulate_users(server.base_url, groups, seconds=SECONDS))
    assert not (tmp_path / "home" / ".gunicorn").exists()

    sys.stdout.write(
        "load: "
        + "; ".join(f"{name}: {stats.count} ({len(stats.errors)} failed)" for name, stats in by_step.items())
        + "\n"
    )
    saves, answers = by_step.get("table save", Stats()), by_step.get("questionnaire answer", Stats())
    submits = by_step.get("questionnaire submit", Stats())
    failures = [f"{name}: {s.status} {s.error}" for name, stats in by_step.items() for s in stats.errors]
    assert failures == [], failures[:10]
    assert saves.count > 0 and answers.count > 0, "the minute passed without an accepted submission"
    # Every accepted table save is one audited change of a measurement, and no other was made.
    assert measurement_events.objects.count() - events_before == saves.count
    # Every accepted questionnaire page is saved, exactly as posted, under its link; nothing else is.
    assert {token: saved_answers(token) for token in accepted} == accepted
    assert Response.objects.count() == len(accepted)
    # Every accepted submit completed its questionnaire, and no other questionnaire was completed.
    completed = Invitation.objects.filter(status=InvitationStatus.COMPLETED)
    assert completed.count() == len(submitted) == submits.count
    assert Response.objects.filter(submitted_at__isnull=False).count() == len(submitted)
    for token in submitted:
        assert completed.filter(links__token_hash=token_hash(token)).exists()
