"""Demo screening data for `make run`: a consent document and two people screened at the demo site.

Runs after `trial.demo.demo_seed()` (the demo site and users) and goes through the same services
as the pages, so the demo's audit trail looks like real use. Idempotent: each step is skipped when
it was done before, so running it again changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.html import escape

from participants import services
from participants.models import ConsentDocument, EligibilityStatus, Participant, Screening
from trial.demo import DEMO_SITE_CODE, DEMO_USERS
from trial.models import Site, User
from trial.roles import Role

DEMO_CONSENT_VERSION = "1.0"
DEMO_CONSENT_LANGUAGE = "en"
DEMO_CONSENT_TITLE = "Participant information and consent (DEMO)"

DEMO_CONSENT_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
  @page {{ size: A4; margin: 2cm; @top-center {{ content: "DEMO - NOT FOR USE WITH PATIENTS"; color: #b00; }} }}
  body {{ font-family: sans-serif; font-size: 11pt; line-height: 1.4; }}
  .demo {{ border: 3px solid #b00; color: #b00; padding: 0.5em; font-weight: bold; text-align: center; }}
</style></head>
<body>
<p class="demo">DEMO DOCUMENT - generated for the demonstration site. It is not an approved consent form.</p>
<h1>{title}</h1>
<p>Version {version} ({language}).</p>
<h2>What is this study about?</h2>
<p>The study tests whether injections of sodium thiosulfate into calcinosis lesions, guided by
ultrasound, make the lesions smaller and ease their symptoms in people with systemic sclerosis,
mixed connective tissue disease or an inflammatory myopathy.</p>
<h2>What does taking part involve?</h2>
<p>Injections into the lesions at study visits, ultrasound measurements of the lesions, and short
questionnaires about symptoms and daily activities.</p>
<h2>Your choice</h2>
<p>Taking part is voluntary. You may stop at any time without giving a reason, and your care will
not be affected.</p>
<p class="demo">DEMO - NOT AN APPROVED DOCUMENT</p>
</body></html>
"""


@dataclass(frozen=True)
class DemoPerson:
    medical_record_number: str  # the demo's key: how a rerun finds the person again
    first_name: str
    last_name: str
    sex: str
    enrol: bool


DEMO_SCREEN_FAILURE = DemoPerson("DEMO-0001", "Frankie", "Young (demo)", "male", enrol=False)
DEMO_ENROLLED = DemoPerson("DEMO-0002", "Erin", "Able (demo)", "female", enrol=True)


@dataclass(frozen=True)
class DemoScreening:
    screening_number: str
    outcome: str
    study_id: str


def demo_consent_pdf() -> bytes:
    """A short PDF, marked DEMO on every page, made with WeasyPrint."""
    from weasyprint import HTML  # imported here: WeasyPrint loads Pango, slow for every process

    html = DEMO_CONSENT_HTML.format(
        title=escape(DEMO_CONSENT_TITLE), version=DEMO_CONSENT_VERSION, language=DEMO_CONSENT_LANGUAGE
    )
    return HTML(string=html).write_pdf()


def _demo_user(role: Role) -> User:
    email = next(email for demo_role, email, _name in DEMO_USERS if demo_role == role)
    return User.objects.get(email=email)


def _consent_document(investigator: User, today: dt.date) -> ConsentDocument:
    existing = ConsentDocument.objects.filter(
        version=DEMO_CONSENT_VERSION, language=DEMO_CONSENT_LANGUAGE
    ).first()
    if existing is not None:
        return existing
    return services.consent_document_add(
        actor=investigator,
        version=DEMO_CONSENT_VERSION,
        language=DEMO_CONSENT_LANGUAGE,
        title=DEMO_CONSENT_TITLE,
        approved_on=today - dt.timedelta(days=60),
        effective_from=today - dt.timedelta(days=30),
        document=SimpleUploadedFile(
            "demo-consent-v1.0-en.pdf", demo_consent_pdf(), content_type="application/pdf"
        ),
    )


def _eligible_answers(screening_date: dt.date) -> dict:
    return {
        "diagnosis": "ssc",
        "diagnosis_date": str(screening_date.year - 6),
        "capable_of_consent": True,
        "calcinosis_evidence": True,
        "calcinosis_modality": "xray",
        "calcinosis_evidence_date": screening_date - dt.timedelta(days=45),
        "needs_symptomatic_relief": True,
    }


def _date_of_birth(person: DemoPerson, screening_date: dt.date) -> dt.date:
    if person.enrol:
        return dt.date(screening_date.year - 52, 4, 12)
    # Turns 18 in three weeks: not "over 18" on the screening date (criterion IN2).
    soon = screening_date + dt.timedelta(days=21)
    return dt.date(soon.year - 18, soon.month, min(soon.day, 28))


def _screen(
    person: DemoPerson, *, site: Site, coordinator: User, investigator: User, document: ConsentDocument
) -> Screening:
    screening = Screening.objects.filter(
        site=site, medical_record_number=person.medical_record_number
    ).first()
    if screening is None:
        screening_date = timezone.localdate(timezone=site.zone)
        screening = services.screening_create(
            actor=coordinator,
            site=site,
            first_name=person.first_name,
            last_name=person.last_name,
            date_of_birth=_date_of_birth(person, screening_date),
            sex=person.sex,
            screening_date=screening_date,
            medical_record_number=person.medical_record_number,
        )
    assessment = screening.eligibility
    if assessment.status == EligibilityStatus.INCOMPLETE:
        answers = _eligible_answers(screening.screening_date)
        if person.sex == "female":
            answers |= {
                "childbearing_potential": True,
                "pregnancy_test_type": "urine_hcg",
                "pregnancy_test_date": screening.screening_date,
                "pregnancy_test_result": "negative",
            }
        else:
            answers |= {"childbearing_potential": False, "non_childbearing_reason": "male"}
        assessment = services.eligibility_record(actor=coordinator, screening=screening, answers=answers)
    if not person.enrol:
        return screening
    if not assessment.is_confirmed:
        services.eligibility_confirm(actor=investigator, screening=screening)
    if services.consent_in_force(screening) is None:
        # The version in force today (a newer one may have been added on the demo site since).
        in_force = ConsentDocument.objects.current(
            language=DEMO_CONSENT_LANGUAGE, on=timezone.localdate(timezone=site.zone)
        )
        services.consent_record(
            actor=coordinator,
            screening=screening,
            document=in_force or document,
            consented_at=timezone.now(),
            participant_signature=f"{person.first_name} {person.last_name}",
            attestation=True,
            copy_given=True,
        )
    if not Participant.objects.filter(screening=screening).exists():
        services.participant_enroll(
            actor=coordinator,
            screening=screening,
            enrolled_on=timezone.localdate(timezone=site.zone),
            email="erin.able@demo.example.org",
            preferred_language=DEMO_CONSENT_LANGUAGE,
        )
    return screening


@transaction.atomic
def participants_demo_seed() -> list[DemoScreening]:
    """The demo consent document (v1.0, English, a generated PDF marked DEMO) and two people
    screened at the demo site: a screen failure (not over 18) and an eligible person whose
    eligibility the demo investigator confirmed, who consented and was enrolled."""
    site = Site.objects.get(code=DEMO_SITE_CODE)
    coordinator, investigator = _demo_user(Role.COORDINATOR), _demo_user(Role.INVESTIGATOR)
    document = _consent_document(investigator, timezone.localdate(timezone=site.zone))
    screened = []
    for person in (DEMO_SCREEN_FAILURE, DEMO_ENROLLED):
        screening = _screen(
            person, site=site, coordinator=coordinator, investigator=investigator, document=document
        )
        screening.refresh_from_db()
        participant = Participant.objects.filter(screening=screening).first()
        screened.append(
            DemoScreening(
                screening.screening_number,
                str(screening.get_outcome_display()),
                participant.study_id if participant else "",
            )
        )
    return screened
