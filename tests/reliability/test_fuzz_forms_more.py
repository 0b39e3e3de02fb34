"""Issue #10 item 3, bad input, continued: the forms tests/reliability/test_fuzz_forms.py does not
reach - the ones with a file, a JSON body, a password or a code, or a hidden target.

The same rule (tests/reliability/hostile.py): every submission is either saved with exactly one
audit event per changed record, its free text stored as typed, or refused with the problem named
and nothing written; never a 500. Three kinds of form need a word more:

- signing refuses a wrong password or code *and records it*: the refused attempt is a row of the
  append-only failure table (21 CFR 11.300(d)), the one write allowed on a refusal;
- sign-in and the second factor write no audit event: they either pass (a redirect onwards) or
  are refused (the page says why, or the account is locked: 403);
- a hidden field naming the target of a one-button form (a lock's scope and id, a verification's
  form, the image page's file) that names nothing gets the 404 an unknown address gets, with
  nothing written.

Submissions per run (profile "fuzz", derandomised): 17 forms, 20 examples each (the consent
document's upload and the DICOM caliper's JSON 40 each) = 380, plus 35 fixed submissions (each
case's unchanged form, a wrong password per signing form, the pinned findings) = 415; about 2.5
minutes on a shared two-core machine. `HYPOTHESIS_PROFILE=fuzz-long` tries 8x the examples.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from lesions.dicom import services as dicom_services
from lesions.models import DicomStatus
from lesions.tasks import dicom_file_process
from participants import services as participant_services
from tests.conftest import sign_in
from tests.data_management.conftest import (  # noqa: F401 - shared fixtures
    baseline,
    completed_visit,
    consent_v1,
    consented,
    coordinator,
    data_manager,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    monitor,
    participant,
    screen,
    visit_data,
)
from tests.factories import DEFAULT_PASSWORD
from tests.reliability.hostile import (
    FUZZ,
    NASTY,
    _names_a_problem,
    audit_events_since,
    audit_high_water,
    hostile_text,
    hostile_value,
    mutations,
    submit,
    text_mutations,
)
from tests.reliability.test_fuzz_forms import Case, staff_case
from trial.accounts.sessions import SIGNED_IN_AT
from trial.data_management import locking
from trial.roles import Role
from trial.signatures.models import Signature, SigningFailure

# Examples per case: 20 (160 with HYPOTHESIS_PROFILE=fuzz-long); the upload and the caliper twice
# that. The module must run in under three minutes on a shared two-core machine.
EXAMPLES = FUZZ.max_examples * 2 // 5
FEW = settings(FUZZ, max_examples=EXAMPLES)
TWICE = settings(FUZZ, max_examples=EXAMPLES * 2)


# --- Forms the common oracle judges -----------------------------------------------------------


@dataclass
class HiddenTargetCase(Case):
    """A one-button form whose hidden fields name its target: an unknown target is a 404."""

    targets: tuple[str, ...] = field(default=())


def lock_create(request):
    visit = request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("data_manager"))
    back = reverse("data_management:visit-verification", args=[visit.pk])
    data = {"scope": "visit", "id": str(visit.pk), "next": back, "reason": "Interim analysis"}
    url = reverse("data_management:lock-create")
    return HiddenTargetCase(
        client=client, url=url, data=data, text_fields=("reason",), targets=("scope", "id")
    )


def study_lock_create(request):
    request.getfixturevalue("baseline")
    client = sign_in(Client(), request.getfixturevalue("data_manager"))
    data = {"scope": "study", "reason": "Database lock for the interim analysis"}
    url = reverse("data_management:lock-create")
    return HiddenTargetCase(client=client, url=url, data=data, text_fields=("reason",), targets=("scope",))


def lock_release(request):
    manager = request.getfixturevalue("data_manager")
    lock = locking.lock_create(
        actor=manager, participant=request.getfixturevalue("participant"), reason="SDV"
    )
    client = sign_in(Client(), manager)
    url = reverse("data_management:lock-release", args=[lock.pk])
    return Case(client=client, url=url, data={"reason": "Query answered"}, text_fields=("reason",))


def visit_verification(request):
    visit = request.getfixturevalue("completed_visit")
    client = sign_in(Client(), request.getfixturevalue("monitor"))
    url = reverse("data_management:visit-verification", args=[visit.pk])
    return HiddenTargetCase(client=client, url=url, data={"form": "participants.visit"}, targets=("form",))


def record_verification(request):
    visit = request.getfixturevalue("completed_visit")
    client = sign_in(Client(), request.getfixturevalue("monitor"))
    url = reverse("data_management:record-verification", args=["participants.visit", visit.pk])
    return Case(client=client, url=url, data={"action": "fields", "field": ["visit_date"]})


def export_request(request):
    request.getfixturevalue("participant")
    client = sign_in(Client(), request.getfixturevalue("monitor"))
    typed = {"kind": "csv_wide", "form": "VISIT", "study_id": request.getfixturevalue("participant").study_id}
    return staff_case(client, reverse("exports:list"), typed)


def dicom_measurement(request):
    dicom_file = ready_dicom_file(request)
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("lesions:dicom-measurement", args=[dicom_file.visit_id, dicom_file.lesion_id])
    data = {
        "file": str(dicom_file.pk),
        "m-source": "caliper",
        "m-frame_number": "1",
        "m-caliper_points": json.dumps(
            {"length": [[200, 100], [300, 100]], "width": [[300, 200], [330, 240]]}
        ),
        "m-length_mm": "26.2",
        "m-width_mm": "13.1",
        "m-depth_mm": "",
        "m-depth_not_measurable_reason": "shadowing",
        "m-doppler_signal": "none",
        "m-operator": "Casey Coordinator",
        "m-device": "Philips CX50",
        "m-reason": "",
        "m-row_version": "",
    }
    # `file` is the image the page shows (hidden): one that is not this lesion's is a 404.
    return HiddenTargetCase(
        client=client, url=url, data=data, text_fields=("m-operator", "m-device"), targets=("file",)
    )


FORMS: dict[str, Callable] = {
    builder.__name__: builder
    for builder in (
        lock_create,
        study_lock_create,
        lock_release,
        visit_verification,
        record_verification,
        export_request,
        dicom_measurement,
    )
}


def submit_case(case: Case, data: dict, typed=()):
    not_found_ok = isinstance(case, HiddenTargetCase) and any(
        data.get(name) != case.data.get(name) for name in case.targets
    )
    return submit(case.client, case.url, data, text_fields=typed, not_found_ok=not_found_ok)


@pytest.fixture(params=sorted(FORMS))
def case(request, db) -> Case:
    return FORMS[request.param](request)


def test_the_unchanged_form_is_saved(case):
    assert submit_case(case, case.data, case.text_fields).saved


def test_hostile_input_is_saved_as_typed_or_refused_with_a_reason(case):
    changes = mutations(case.fields())
    if case.text_fields:
        changes = changes | text_mutations(case.text_fields)

    @FEW
    @given(changes=changes)
    def run(changes):
        typed = [name for name in case.text_fields if name in changes]
        submit_case(case, case.data | changes, typed)

    run()


# --- The consent document's upload ------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

file_names = st.one_of(
    st.sampled_from(
        [
            "consent.pdf",
            "../../../etc/passwd.pdf",
            "..\\..\\boot.ini",
            "<script>alert(1)</script>.pdf",
            "\u202efdp.exe",
            "consent\x00.pdf",
            "CON.pdf",
            ".pdf",
            "x" * 5000 + ".pdf",
            "\U0001f600\u0301.pdf",
            "consent.exe",
            "consent",
        ]
    ),
    hostile_text.filter(bool),
)
file_bodies = st.one_of(
    st.sampled_from(
        [
            b"",
            PDF,
            b"%PDF",  # the magic alone
            b"%PDF-1.4\n",  # a header and nothing else: it claims to be a PDF
            b"PK\x03\x04 a Word document",
            b"<html><script>alert(1)</script></html>",
            b"\x00" * 64,
            b" %PDF-1.4\n",
        ]
    ),
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda tail: PDF + tail),
)
content_types = st.sampled_from(["application/pdf", "application/x-msdownload", "text/html", "", "\x00/\x00"])


def consent_document_case(request) -> Case:
    request.getfixturevalue("consent_v1")
    client = sign_in(Client(), request.getfixturevalue("investigator"))
    data = {
        "version": "2.0",
        "language": "en",
        "title": "Participant information and consent",
        "approved_on": "2026-10-20",
        "effective_from": "2026-11-03",
        "effective_until": "",
    }
    url = reverse("participants:consent-document-create")
    return Case(client=client, url=url, data=data, text_fields=("title", "version"))


def test_a_hostile_consent_document_upload_is_saved_as_typed_or_refused(request, db):
    case = consent_document_case(request)
    fields = mutations(case.fields(), max_fields=2) | st.just({})

    @TWICE
    @given(name=file_names, body=file_bodies, content_type=content_types, changes=fields, omit=st.booleans())
    def run(name, body, content_type, changes, omit):
        data = case.data | changes
        if not omit:
            data["document"] = SimpleUploadedFile(name, body, content_type=content_type)
        typed = [name for name in case.text_fields if name in changes]
        outcome = submit(case.client, case.url, data, text_fields=typed)
        if outcome.saved:  # only a PDF is ever kept
            assert body.startswith(b"%PDF")

    run()


def test_the_unchanged_consent_document_upload_is_saved(request, db):
    case = consent_document_case(request)
    data = case.data | {"document": SimpleUploadedFile("consent.pdf", PDF, content_type="application/pdf")}
    assert submit(case.client, case.url, data, text_fields=case.text_fields).saved


# --- The DICOM caliper (JSON in, millimetres out; writes nothing) --------------------------------


def ready_dicom_file(request):
    """The palette sample (calibrated, 800 x 600) uploaded and processed by the real task."""
    coordinator_user = request.getfixturevalue("coordinator")
    visit = request.getfixturevalue("baseline")
    lesion = request.getfixturevalue("lesions")[0]
    django_capture = request.getfixturevalue("django_capture_on_commit_callbacks")
    with open(get_testdata_file("examples_palette.dcm"), "rb") as handle:
        upload = SimpleUploadedFile("scan.dcm", handle.read(), content_type="application/dicom")
    with django_capture(execute=False):
        dicom_file = dicom_services.dicom_file_upload(
            actor=coordinator_user, lesion=lesion, visit=visit, upload=upload
        )
    with django_capture(execute=True):
        dicom_file_process.apply(args=[dicom_file.pk])
    dicom_file.refresh_from_db()
    assert dicom_file.status == DicomStatus.READY
    return dicom_file


coordinate = st.one_of(
    st.integers(min_value=-5, max_value=900),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from(NASTY[:25]),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)
point = st.one_of(
    st.lists(coordinate, min_size=0, max_size=3), coordinate, st.dictionaries(st.text(max_size=3), coordinate)
)
pair = st.one_of(st.lists(point, min_size=0, max_size=3), point)
caliper_points = st.one_of(
    st.dictionaries(st.sampled_from(["length", "width", "depth", "<script>", ""]), pair, max_size=3),
    hostile_value,
    st.none(),
)
frames = st.one_of(
    st.integers(min_value=-3, max_value=3),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.none(),
    st.lists(st.integers(), max_size=2),
)


def caliper_body(frame, points) -> bytes:
    # Python's json writes NaN and Infinity, as a hostile client may.
    return json.dumps({"frame": frame, "points": points}).encode()


def test_hostile_caliper_points_get_millimetres_or_a_reason_and_write_nothing(request, db):
    dicom_file = ready_dicom_file(request)
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    url = reverse("lesions:dicom-caliper", args=[dicom_file.pk])

    @TWICE
    @given(
        body=st.one_of(
            st.builds(caliper_body, frames, caliper_points),
            st.binary(max_size=60),
            st.sampled_from([b"", b"[]", b"null", b'"x"', b"{", b'{"points": []}', b"1e999", b"\xff\xfe"]),
        )
    )
    def run(body):
        with transaction.atomic():
            mark = audit_high_water()
            response = client.post(url, body, content_type="application/json")
            events = audit_events_since(mark)
            transaction.set_rollback(True)
        assert not events, "the caliper wrote an audit event"
        assert response.status_code in (200, 400), response.status_code
        payload = response.json()
        if response.status_code == 400:
            assert payload["error"]
        else:
            for distance in payload["distances"].values():
                assert float(distance["mm"]) >= 0 and distance["mm"] not in ("NaN", "Infinity")

    run()


# --- Signing: a refusal writes the refused attempt, nothing else ---------------------------------


def current_code(user) -> str:
    device = user.totpdevice_set.get()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


@dataclass
class SignCase:
    client: Client
    url: str
    data: dict
    subjects: int  # how many records a signature is made for
    user: object = None


def _code_due(client) -> None:
    """The session passed the second factor 20 minutes ago: signing asks for a code."""
    session = client.session
    session[SIGNED_IN_AT] = session[SIGNED_IN_AT] - 20 * 60
    session.save()


def _signer(request, *, code_due: bool):
    user = request.getfixturevalue("investigator")
    client = sign_in(Client(), user)
    if code_due:
        _code_due(client)
    return user, client


def visit_sign(request, *, code_due=False):
    visit = request.getfixturevalue("completed_visit")
    user, client = _signer(request, code_due=code_due)
    data = {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}
    if code_due:
        data["otp_token"] = current_code(user)
    return SignCase(client, reverse("signatures:visit-sign", args=[visit.pk]), data, 1, user)


def visit_sign_with_code(request):
    return visit_sign(request, code_due=True)


def eligibility_sign(request):
    screening = request.getfixturevalue("eligible_screening")
    user, client = _signer(request, code_due=False)
    data = {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}
    return SignCase(client, reverse("signatures:eligibility-sign", args=[screening.pk]), data, 1, user)


def end_of_study_sign(request):
    participant_ = request.getfixturevalue("participant")
    participant_services.participant_end(
        actor=request.getfixturevalue("coordinator"),
        participant=participant_,
        ended_on=participant_.enrolled_on,
        end_reason="lost",
        detail="No answer",
    )
    user, client = _signer(request, code_due=False)
    data = {"meaning": "reviewed_approved", "password": DEFAULT_PASSWORD}
    return SignCase(client, reverse("signatures:end-of-study-sign", args=[participant_.pk]), data, 1, user)


def queue_sign(request):
    visit = request.getfixturevalue("completed_visit")
    screening = request.getfixturevalue("eligible_screening")
    user, client = _signer(request, code_due=True)
    data = {
        "meaning": "reviewed_approved",
        "password": DEFAULT_PASSWORD,
        "otp_token": current_code(user),
        "visits": [str(visit.pk)],
        "screenings": [str(screening.pk)],
    }
    return SignCase(client, reverse("signatures:queue"), data, 2, user)


SIGN_FORMS: dict[str, Callable] = {
    builder.__name__: builder
    for builder in (visit_sign, visit_sign_with_code, eligibility_sign, end_of_study_sign, queue_sign)
}


@pytest.fixture(params=sorted(SIGN_FORMS))
def sign_case(request, db) -> SignCase:
    return SIGN_FORMS[request.param](request)


def sign_submit(case: SignCase, data: dict) -> bool:
    """Post a signing form; True when signed. Signed: a redirect and one new signature per
    record signed (each one audit event). Refused: the page says why, and the only audit events
    are refused attempts (one per record, when the password or code was wrong)."""
    with transaction.atomic():
        mark = audit_high_water()
        response = case.client.post(case.url, data)
        events = audit_events_since(mark)
        transaction.set_rollback(True)
    per_record = Counter((type(event), event.pgh_obj_id) for event in events)
    assert all(count == 1 for count in per_record.values()), f"{case.url}: {per_record}"
    signatures = [e for e in events if type(e).pgh_tracked_model is Signature]
    failures = [e for e in events if type(e).pgh_tracked_model is SigningFailure]
    if response.status_code == 302:
        assert len(signatures) >= 1 and not failures, f"{case.url}: redirected without a signature"
        assert len(signatures) <= case.subjects
        return True
    assert response.status_code in (200, 400), f"{case.url}: unexpected status {response.status_code}"
    assert not signatures, f"{case.url}: refused but signed"
    others = [e for e in events if e not in failures]
    assert not others, f"{case.url}: refused but wrote {others}"
    assert len(failures) in (0, case.subjects), f"{case.url}: {len(failures)} refused attempts logged"
    if failures:
        assert all(f.user_id == case.user.pk for f in failures)
    assert _names_a_problem(response), f"{case.url}: refused without saying why"
    return False


def test_the_unchanged_sign_form_signs(sign_case):
    assert sign_submit(sign_case, sign_case.data)


def test_a_wrong_password_is_refused_and_the_refused_attempt_is_recorded(sign_case):
    with transaction.atomic():
        mark = audit_high_water()
        response = sign_case.client.post(sign_case.url, sign_case.data | {"password": "not my password"})
        events = audit_events_since(mark)
        transaction.set_rollback(True)
    assert response.status_code == 400
    assert "The password is not correct. Nothing was signed." in response.content.decode()
    assert [type(e).pgh_tracked_model for e in events] == [SigningFailure] * sign_case.subjects
    assert {e.reason for e in events} == {"wrong password"}


sign_values = st.one_of(
    hostile_value,
    st.just(DEFAULT_PASSWORD + " "),
    st.just(DEFAULT_PASSWORD.upper()),
    st.sampled_from(
        ["000000", "123456", "1234567", "\u0661\u0662\u0663\u0664\u0665\u0666", "\u00b2" * 6, " " * 6]
    ),
)


def test_hostile_signing_input_signs_or_is_refused_with_a_reason(sign_case):
    names = sorted(name for name in sign_case.data)

    @FEW
    @given(changes=st.dictionaries(st.sampled_from(names), sign_values, min_size=1, max_size=3))
    def run(changes):
        sign_submit(sign_case, sign_case.data | changes)

    run()


# --- Sign-in and the second factor -------------------------------------------------------------

LOGIN = "/account/login/"
VERIFY = "/account/two-factor/"
SETUP = "/account/two-factor/setup/"


def auth_submit(client, url: str, data: dict, *, user) -> bool:
    """Post a sign-in step; True when it let the person on. Never a 500, and never an audit event
    (the user's trail leaves out the last sign-in time: trial migration 0003)."""
    cookies = copy.deepcopy(client.cookies)  # a pass cycles the session key; the rollback drops it
    with transaction.atomic():
        mark = audit_high_water()
        response = client.post(url, data)
        events = audit_events_since(mark)
        location = response.get("Location", "")
        passed = response.status_code == 302 and not location.startswith((url, LOGIN))
        transaction.set_rollback(True)
    client.cookies = cookies
    assert not events, f"{url}: wrote {events}"
    if passed:
        return True
    assert response.status_code in (200, 403), f"{url}: unexpected status {response.status_code}"
    body = response.content.decode()
    assert _names_a_problem(response) or "Account locked" in body, f"{url}: refused without saying why"
    return False


emails = st.one_of(hostile_text, st.sampled_from(["", " ", "a@b", "@", "x" * 300 + "@example.org"]))


def test_hostile_sign_in_input_passes_or_is_refused(make_user, db):
    user = make_user(role=Role.COORDINATOR)
    variants = st.sampled_from([user.email, user.email.upper(), f"  {user.email} "])
    passwords = st.one_of(hostile_value, st.just(DEFAULT_PASSWORD), st.just(" " + DEFAULT_PASSWORD))
    assert auth_submit(Client(), LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD}, user=user)

    @FEW
    @given(username=st.one_of(variants, emails, hostile_value), password=passwords)
    def run(username, password):
        passed = auth_submit(Client(), LOGIN, {"username": username, "password": password}, user=user)
        if passed:  # only this user's own password lets anyone on
            assert password == DEFAULT_PASSWORD

    run()


def test_hostile_second_factor_codes_pass_only_when_right(make_user, db):
    user = make_user(role=Role.COORDINATOR)
    client = Client()
    assert client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD}).status_code == 302
    right = current_code(user)
    codes = st.one_of(hostile_value, st.just(right), st.just(f" {right[:3]} {right[3:]} "), sign_values)
    assert auth_submit(client, VERIFY, {"otp_token": right}, user=user)

    @FEW
    @given(code=codes)
    def run(code):
        passed = auth_submit(client, VERIFY, {"otp_token": code}, user=user)
        if passed:
            assert isinstance(code, str) and "".join(code.split()) == right

    run()


def test_hostile_codes_on_the_authenticator_setup_are_refused(make_user, db):
    user = make_user(role=Role.COORDINATOR, totp=False)
    client = Client()
    assert client.post(LOGIN, {"username": user.email, "password": DEFAULT_PASSWORD}).status_code == 302
    assert client.get(SETUP).status_code == 200  # the device waiting to be confirmed

    @FEW
    @given(code=st.one_of(hostile_value, sign_values))
    def run(code):
        auth_submit(client, SETUP, {"otp_token": code}, user=user)

    run()


# --- What the fuzzing found, pinned -----------------------------------------------------------


def test_a_lock_for_an_id_that_is_not_a_number_is_not_found_not_a_server_error(request, db):
    case = lock_create(request)
    outcome = submit_case(case, case.data | {"id": "<script>alert(1)</script>"})
    assert (outcome.saved, outcome.status) == (False, 404)


def test_a_lock_reason_longer_than_the_lock_keeps_is_refused_not_cut_short(request, db):
    case = lock_create(request)
    outcome = submit_case(case, case.data | {"reason": "x" * 301}, ("reason",))
    assert (outcome.saved, outcome.status) == (False, 302)
    messages = [str(m) for m in case.client.get(case.data["next"]).context["messages"]]
    assert any("at most 300 characters" in m for m in messages)


def test_a_lock_whose_next_is_not_a_path_goes_back_to_the_lock_list(request, db):
    case = lock_create(request)
    outcome = submit_case(case, case.data | {"next": '"><img src=x onerror=alert(1)>'}, ())
    assert outcome.saved
    response = case.client.post(case.url, case.data | {"next": "home"})
    assert response["Location"] == reverse("data_management:lock-list")


def test_an_unknown_button_on_a_record_verification_verifies_nothing(request, db):
    case = record_verification(request)
    outcome = submit_case(case, case.data | {"action": "<script>alert(1)</script>"})
    assert (outcome.saved, outcome.status) == (False, 302)


def test_an_address_longer_than_any_account_has_is_refused_at_sign_in_not_a_server_error(make_user, db):
    user = make_user(role=Role.COORDINATOR)
    data = {"username": "0" * 300, "password": "<script>alert(1)</script>"}
    assert auth_submit(Client(), LOGIN, data, user=user) is False
    response = Client().post(LOGIN, data)
    assert "at most 254 characters" in response.content.decode()


def test_a_file_name_too_long_for_the_upload_headers_gets_a_page_that_says_so(request, db):
    case = consent_document_case(request)
    data = case.data | {
        "document": SimpleUploadedFile("\U00010000" * 300, b"", content_type="application/pdf")
    }
    outcome = submit(case.client, case.url, data)
    assert (outcome.saved, outcome.status) == (False, 400)
    assert "The request could not be read" in case.client.post(case.url, data).content.decode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"frame": Infinity, "points": {}}',
        b'{"frame": 1e999, "points": {}}',
        b'{"frame": 1, "points": {"length": [[1' + b"0" * 400 + b", 100], [300, 100]]}}",
        b'{"frame": 1, "points": {"length": [[-Infinity, NaN], [300, 100]]}}',
    ],
    ids=["infinite-frame", "overflowing-frame", "integer-too-large-for-a-float", "nan-point"],
)
def test_caliper_numbers_no_float_can_hold_are_refused_not_a_server_error(request, db, body):
    dicom_file = ready_dicom_file(request)
    client = sign_in(Client(), request.getfixturevalue("coordinator"))
    response = client.post(
        reverse("lesions:dicom-caliper", args=[dicom_file.pk]), body, content_type="application/json"
    )
    assert response.status_code == 400 and response.json()["error"]


def test_a_caliper_point_no_float_can_hold_is_refused_on_save_not_a_server_error(request, db):
    case = dicom_measurement(request)
    points = '{"length": [[1' + "0" * 400 + ', 100], [300, 100]], "width": [[300, 200], [330, 240]]}'
    outcome = submit_case(case, case.data | {"m-caliper_points": points})
    assert (outcome.saved, outcome.status) == (False, 400)


def test_a_lock_reason_with_markup_is_shown_as_text_on_the_locked_pages(request, db):
    case = lock_create(request)
    reason = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    assert case.client.post(case.url, case.data | {"reason": reason}).status_code == 302
    for url in (case.data["next"], reverse("data_management:lock-list")):
        body = case.client.get(url).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, url
        assert "<script>alert(1)" not in body and "<img src=x" not in body, url
