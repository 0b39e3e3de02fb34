"""Measure one data size: `python -m bench.measure <size> <results.json>`, run by bench.run with
the environment of that size's database (bench.environment)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import django

CONCURRENT_USERS = 50
CONCURRENT_SECONDS = 30
# An export still running after this is stopped and reported (the target is 60 s at N = 10,000).
EXPORT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    step: object
    cookies: dict | None = None
    requests: int = 200
    max_seconds: float = 8.0


def _prepare():
    """The users, sessions and records the pages need, read from the seeded data."""
    from django.db.models import Count

    from bench.questionnaires import answerable_invitation, page_post, patient_link
    from bench.sessions import staff_session_cookie
    from participants.models import ParticipantStatus, Visit, VisitStatus
    from trial.demo import DEMO_SITE_CODE, DEMO_USERS
    from trial.models import Site, User
    from trial.roles import Role

    site = Site.objects.get(code=DEMO_SITE_CODE)
    users = {role: User.objects.get(email=email) for role, email, _name in DEMO_USERS}
    # A visit that takes measurements, with the most lesions measured, at the demo site.
    visit = (
        Visit.objects.filter(participant__site=site, participant__status=ParticipantStatus.ON_STUDY)
        .exclude(status=VisitStatus.MISSED)
        .annotate(rows=Count("measurements"))
        .filter(rows__gt=0)
        .order_by("-rows", "pk")
        .first()
    )
    invitation = answerable_invitation()
    token = patient_link(invitation)
    sections = invitation.instrument.sections
    return {
        "site": site,
        "users": users,
        "visit": visit,
        "participant_id": visit.participant_id if visit else None,
        "token": token,
        "posts": [page_post(sections[0], variant) for variant in range(10)],
        "cookie": lambda role: staff_session_cookie(users[role], site),
        "Role": Role,
    }


def _pages(prepared) -> list[Page]:
    from bench.pages import get_page, measurement_save, questionnaire_save

    Role = prepared["Role"]
    coordinator = prepared["cookie"](Role.COORDINATOR)
    investigator = prepared["cookie"](Role.INVESTIGATOR)
    token = prepared["token"]
    pages = [
        Page("floor", "Trivial view /healthz/web (floor)", get_page("/healthz/web")),
        Page("login", "Login page", get_page("/account/login/")),
        Page("today", "Coordinator today list", get_page("/today/"), coordinator),
        Page("dashboard", "Investigator dashboard", get_page("/dashboard/"), investigator, requests=100),
        Page("pro_page", "PRO page (load)", get_page(f"/q/{token}/1/")),
        Page("pro_submit", "PRO page (submit)", questionnaire_save(f"/q/{token}/1/", prepared["posts"])),
    ]
    if prepared["visit"] is not None:
        pages[3:3] = [
            Page(
                "timeline",
                "Participant timeline",
                get_page(f"/participants/{prepared['participant_id']}/timeline/"),
                coordinator,
            ),
        ]
        pages.append(
            Page(
                "measurement_save",
                "Measurement + injection table (save)",
                measurement_save(prepared["visit"].pk),
                coordinator,
                requests=100,
            )
        )
    return pages


def _concurrent_groups(prepared):
    """50 users at once: coordinators (today list, timeline, table saves), investigators
    (dashboard) and patients (a questionnaire page, load and save)."""
    from bench.pages import questionnaire_page_post, table_save
    from bench.questionnaires import answerable_invitation, page_post, patient_link
    from bench.traffic import UserGroup, timed

    Role = prepared["Role"]
    visit_id = prepared["visit"].pk if prepared["visit"] else None
    participant_id = prepared["participant_id"]

    async def coordinator(client, number, record):
        record("today", (await timed(client, "GET", "/today/"))[0])
        if participant_id:
            record("timeline", (await timed(client, "GET", f"/participants/{participant_id}/timeline/"))[0])
        if visit_id and number % 5 == 0:
            page, save = await table_save(client, visit_id, number)
            record("table page", page)
            # Two people saving one table at once may conflict: that answer is correct, not an error.
            if save.status != 422:
                record("table save", save)

    async def investigator(client, number, record):
        record("dashboard", (await timed(client, "GET", "/dashboard/"))[0])

    invitation = answerable_invitation()
    section = invitation.instrument.sections[0]
    patients = [patient_link(invitation) for _ in range(15)]

    def patient_for(token):
        url = f"/q/{token}/1/"

        async def patient(client, number, record):
            record("PRO page", (await timed(client, "GET", url))[0])
            record("PRO submit", await questionnaire_page_post(client, url, page_post(section, number)))

        return patient

    return [
        UserGroup("coordinators", coordinator, [prepared["cookie"](Role.COORDINATOR) for _ in range(25)]),
        UserGroup("investigators", investigator, [prepared["cookie"](Role.INVESTIGATOR) for _ in range(10)]),
        *(UserGroup("patient", patient_for(token), [{}]) for token in patients),
    ]


def main(size: int, out: Path) -> None:
    django.setup()
    from django.db import connection

    from bench import renders
    from bench.environment import VAR_DIR, bench_environment
    from bench.server import gunicorn
    from bench.traffic import load, simulate_users
    from trial.demo import DEMO_USERS
    from trial.roles import Role

    database = connection.settings_dict["NAME"]
    prepared = _prepare()
    results: dict = {"size": size, "database": database, "pages": {}, "inprocess": {}}
    with gunicorn(bench_environment(database), VAR_DIR / f"gunicorn-{size}.log") as server:
        for page in _pages(prepared):
            stats = asyncio.run(
                load(
                    server.base_url,
                    page.step,
                    cookies=page.cookies,
                    requests=page.requests,
                    max_seconds=page.max_seconds,
                )
            )
            results["pages"][page.key] = {"label": page.label, **stats.summary()}
            sys.stderr.write(f"  {size}: {page.label}: {results['pages'][page.key]}\n")
        by_step = asyncio.run(
            simulate_users(server.base_url, _concurrent_groups(prepared), seconds=CONCURRENT_SECONDS)
        )
        results["concurrent"] = {
            "users": CONCURRENT_USERS,
            "seconds": CONCURRENT_SECONDS,
            "requests": sum(s.count for s in by_step.values()),
            "errors": sum(len(s.errors) for s in by_step.values()),
            "steps": {name: stats.summary() for name, stats in by_step.items()},
        }
        results["server_peak_rss_mb"] = round(server.worker_peak_rss_kb() / 1024, 1)
    sys.stderr.write(f"  {size}: concurrent users: {results['concurrent']['errors']} errors\n")
    results["inprocess"]["visit_pdf"] = renders.visit_pdf()
    results["inprocess"]["reminder_tick"] = renders.reminder_tick()
    exporter = next(email for role, email, _n in DEMO_USERS if role == Role.DATA_MANAGER)
    timeout = float(os.environ.get("BENCH_EXPORT_TIMEOUT_S") or EXPORT_TIMEOUT_S)
    results["exports"] = {
        kind: renders.export(kind, exporter, timeout_s=timeout) for kind in ("csv_long", "odm")
    }
    out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
