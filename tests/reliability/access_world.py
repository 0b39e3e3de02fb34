"""One small trial for the access matrix: two sites, each with an enrolled participant, a completed
baseline visit (measurement, injection, adverse event, DICOM image, PDF report, signature), a
questionnaire link, a query, a lock on a later visit, an export, and people in every role.

Built once per test module with the real services (no rows written behind their back), so every
URL of the matrix has a real object behind its kwargs at the user's own site and at the other one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone
from pydicom.data import get_testdata_file

from lesions import services as lesion_services
from lesions.dicom import services as dicom_services
from lesions.services import LesionRow
from lesions.tasks import dicom_file_process
from participants import safety, services, visits
from pro_measures import invitations
from pro_measures.invitations import link_create
from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, ELIGIBLE_ANSWERS, SiteFactory, UserFactory, pdf_upload
from tests.lesions.conftest import injection, measurement
from tests.pro_measures.answers import complete_answers, invite
from tests.signatures.test_signing import current_code
from trial.data_management import locking
from trial.data_management import services as query_services
from trial.exports import services as export_services
from trial.exports.tasks import export_run
from trial.reports.services import visit_report_generate
from trial.roles import Role
from trial.signatures import services as signature_services

STAFF_ROLES = (Role.COORDINATOR, Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER, Role.ADMINISTRATOR)
# Roles that see every site: their "other site" is as much theirs as their own.
ALL_SITES_ROLES = (Role.DATA_MANAGER, Role.ADMINISTRATOR)


@dataclass
class SiteWorld:
    """The objects of one site, by the kind of URL kwargs they fill."""

    kwargs: dict[str, dict] = field(default_factory=dict)


@dataclass
class World:
    own: SiteWorld
    other: SiteWorld
    sessions: dict[str, str]  # actor -> session key

    def client(self, actor: str) -> Client:
        client = Client()
        if actor in self.sessions:
            from django.conf import settings

            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[actor]
        return client


def _site_world(site, *, consent_document, data_manager, today) -> SiteWorld:
    def person(role, name):
        return UserFactory(role=role, sites=[site], full_name=f"{name} {site.code}")

    coordinator = person(Role.COORDINATOR, "Casey")
    investigator = person(Role.INVESTIGATOR, "Ira")
    monitor = person(Role.MONITOR, "Mona")

    screening = services.screening_create(
        actor=coordinator,
        site=site,
        first_name="Jane",
        last_name=f"Doe {site.code}",
        date_of_birth=dt.date(1970, 5, 17),
        sex="female",
        screening_date=today,
    )
    services.eligibility_record(actor=coordinator, screening=screening, answers=dict(ELIGIBLE_ANSWERS))
    screening.refresh_from_db()
    services.eligibility_confirm(actor=investigator, screening=screening)
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=consent_document,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    participant = services.participant_enroll(
        actor=coordinator, screening=screening, enrolled_on=today, email=f"jane.{site.code}@example.org"
    )
    lesion = lesion_services.lesion_add(
        actor=coordinator,
        participant=participant,
        first_seen_on=today - dt.timedelta(days=60),
        label="L1",
        anatomical_site="elbow",
        laterality="left",
        is_target=True,
    )
    baseline = participant.visits.get(code="W0")
    safety.pregnancy_test_record(
        actor=coordinator,
        participant=participant,
        test_type="urine_hcg",
        test_date=today,
        result="negative",
        visit=baseline,
    )
    lesion_services.visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[LesionRow(lesion, measurement=measurement(), injection=injection("0.50"))],
    )
    adverse_event = safety.adverse_event_record(
        actor=coordinator,
        participant=participant,
        values={
            "term_code": "injection_site_pain",
            "ctcae_version": "5.0",
            "grade": 1,
            "related_to_sts": "probable",
            "related_to_procedure": "probable",
            "onset_date": today.isoformat(),
            "outcome": "recovering",
            "action_taken": "none",
            "description": "Mild pain",
            "reported_at_visit": baseline,
        },
    )
    safety.ae_review_record(actor=coordinator, visit=baseline, new_events=True)

    with open(get_testdata_file("examples_palette.dcm"), "rb") as handle:
        upload = SimpleUploadedFile("scan.dcm", handle.read(), content_type="application/dicom")
    dicom_file = dicom_services.dicom_file_upload(
        actor=coordinator, lesion=lesion, visit=baseline, upload=upload
    )
    dicom_file_process.apply(args=[dicom_file.pk])

    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=today)
    report = visit_report_generate(visit_id=baseline.pk)
    signature_services.visits_sign(
        actor=investigator,
        visits=[baseline],
        meaning="reviewed_approved",
        password=DEFAULT_PASSWORD,
        otp_token=current_code(investigator),
    )
    invitation = invite(baseline, "pain_nrs")
    token = link_create(invitation)
    answered = invite(baseline, "ptga")
    invitations.response_save_answers(invitation=answered, answers=complete_answers("ptga"))
    invitations.response_submit(invitation=answered)
    query = query_services.query_raise(actor=monitor, record=baseline, field_name="", text="Please check")
    later_visit = participant.visits.exclude(pk=baseline.pk).order_by("target_date").first()
    lock = locking.lock_create(actor=data_manager, visit=later_visit)
    job = export_services.export_request(actor=monitor, kind="dictionary", parameters={"site_ids": [site.pk]})
    export_run.apply(args=[job.pk])
    site_user = UserFactory(role=Role.COORDINATOR, sites=[site], full_name=f"Sam {site.code}")

    world = SiteWorld()
    world.kwargs = {
        "site": {"pk": site.pk},
        "user": {"pk": site_user.pk},
        "record": {"model_label": "participants.participant", "pk": participant.pk},
        "screening": {"pk": screening.pk},
        "participant": {"pk": participant.pk},
        "visit": {"pk": baseline.pk},
        "adverse_event": {"pk": adverse_event.pk},
        "lesion": {"pk": lesion.pk},
        "visit_lesion": {"visit": baseline.pk, "lesion": lesion.pk},
        "dicom": {"pk": dicom_file.pk},
        "dicom_frame": {"pk": dicom_file.pk, "frame": 1},
        "invitation": {"pk": invitation.pk},
        "answered_invitation": {"pk": answered.pk},
        "report": {"pk": report.pk},
        "export": {"pk": job.pk},
        "query": {"pk": query.pk},
        "query_record": {"model_label": "participants.visit", "object_id": baseline.pk},
        "verification_record": {"model_label": "participants.adverseevent", "object_id": adverse_event.pk},
        "lock": {"pk": lock.pk},
        "token": {"token": token},
        "token_page": {"token": token, "number": 1},
    }
    world.people = {"coordinator": coordinator, "investigator": investigator, "monitor": monitor}
    return world


def build_world() -> World:
    """Site A is every site-bound user's own site; site B is the other one."""
    today = timezone.localdate()
    site_a = SiteFactory(code="A1", name="Site A")
    site_b = SiteFactory(code="B1", name="Site B")
    data_manager = UserFactory(role=Role.DATA_MANAGER, full_name="Dana Manager")
    administrator = UserFactory(role=Role.ADMINISTRATOR, full_name="Ada Admin")
    investigator_a = UserFactory(role=Role.INVESTIGATOR, sites=[site_a], full_name="Ivo Investigator")
    consent_document = services.consent_document_add(
        actor=investigator_a,
        version="1.0",
        language="en",
        title="Participant information and consent",
        approved_on=today - dt.timedelta(days=300),
        effective_from=today - dt.timedelta(days=200),
        document=pdf_upload(),
    )
    # Tasks enqueued on commit never run (the module's transaction is never committed): the ones the
    # world needs are run here by hand (.apply()); nothing is sent to a broker.
    own = _site_world(site_a, consent_document=consent_document, data_manager=data_manager, today=today)
    other = _site_world(site_b, consent_document=consent_document, data_manager=data_manager, today=today)

    shared = {
        "consent_document": {"pk": consent_document.pk},
        "instrument": {"code": "pain_nrs"},
        "password_reset": {"uidb64": "MQ", "token": "not-a-token"},
    }
    own.kwargs.update(shared)
    other.kwargs.update(shared)
    # "other" for a patient link is a link nobody was given.
    other.kwargs["token"] = {"token": "x" * 43}
    other.kwargs["token_page"] = {"token": "x" * 43, "number": 1}

    sessions = {}
    people = {
        "coordinator": own.people["coordinator"],
        "investigator": own.people["investigator"],
        "monitor": own.people["monitor"],
        "data_manager": data_manager,
        "administrator": administrator,
    }
    for actor, user in people.items():
        sessions[actor] = sign_in(Client(), user).cookies["sessionid"].value
    # Signed in with the password only: the second factor not yet passed.
    password_only = Client()
    password_only.force_login(UserFactory(role=Role.COORDINATOR, sites=[site_a], full_name="Half Signed"))
    sessions["password_only"] = password_only.cookies["sessionid"].value
    # A patient's browser: it has opened its own questionnaire link (and holds that session).
    patient = Client()
    patient.get(f"/q/{own.kwargs['token']['token']}/")
    if "sessionid" in patient.cookies:
        sessions["patient"] = patient.cookies["sessionid"].value
    return World(own=own, other=other, sessions=sessions)
