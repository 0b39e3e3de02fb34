"""Ultrasound DICOM files from upload to preview: the web process only stores the bytes, the task
parses them in the sandbox (a real child process: `.apply()`, no mocks), de-identifies, reads
the calibration and renders the frames; hostile files are rejected with a reason in time; every
image is served only to the participant's site."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import struct
import time
from decimal import Decimal

import pydicom
import pytest
import time_machine
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings
from django.urls import reverse
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MediaStorageDirectoryStorage, generate_uid

from lesions.dicom import services
from lesions.dicom.sandbox import WALL_CLOCK_SECONDS
from lesions.models import DicomFile, DicomStatus, MeasurementSource, UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from lesions.tasks import dicom_file_process, dicom_files_requeue_stuck
from participants.models import Visit
from tests.conftest import sign_in
from tests.lesions.conftest import TODAY, measurement
from trial.audit import event_model_for
from trial.roles import Role

pytestmark = pytest.mark.django_db


def sample(name: str) -> bytes:
    with open(get_testdata_file(name), "rb") as handle:
        return handle.read()


@pytest.fixture
def baseline(participant):
    return participant.visits.get(code="W0")


@pytest.fixture
def ingest(coordinator, baseline, lesions, django_capture_on_commit_callbacks):
    """Upload `content` as the coordinator and run the processing task for real."""

    def run(content: bytes, name: str = "scan.dcm", lesion=None) -> DicomFile:
        with django_capture_on_commit_callbacks(execute=False):  # the test runs the task itself
            dicom_file = services.dicom_file_upload(
                actor=coordinator,
                lesion=lesion or lesions[0],
                visit=baseline,
                upload=SimpleUploadedFile(name, content, content_type="application/dicom"),
            )
        quarantined = dicom_file.quarantine_path
        with django_capture_on_commit_callbacks(execute=True):
            dicom_file_process.apply(args=[dicom_file.pk])
        dicom_file.refresh_from_db()
        assert not default_storage.exists(quarantined), "the raw upload is deleted once processed"
        return dicom_file

    return run


def stored_dataset(dicom_file: DicomFile) -> pydicom.Dataset:
    with default_storage.open(dicom_file.deidentified_path, "rb") as handle:
        return pydicom.dcmread(io.BytesIO(handle.read()))


# --- Upload through the page ------------------------------------------------------------------


def test_upload_is_pending_until_the_task_runs_then_ready_with_calibration(
    client, coordinator, baseline, lesions, django_capture_on_commit_callbacks
):
    Visit.objects.filter(pk=baseline.pk).update(visit_date=TODAY)
    sign_in(client, coordinator)
    page = reverse("lesions:dicom-page", args=[baseline.pk, lesions[0].pk])
    upload = SimpleUploadedFile("palette.dcm", sample("examples_palette.dcm"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("lesions:dicom-upload", args=[baseline.pk, lesions[0].pk]), {"files": [upload]}
        )
    assert response.status_code == 302
    dicom_file = DicomFile.objects.get()
    # The web request stored bytes and enqueued one task: nothing was parsed yet.
    assert dicom_file.status == DicomStatus.PENDING and len(callbacks) == 1
    assert dicom_file.original_sha256 == hashlib.sha256(sample("examples_palette.dcm")).hexdigest()
    assert dicom_file.regions == [] and dicom_file.deidentified_path == ""
    status_url = reverse("lesions:dicom-status", args=[dicom_file.pk])
    assert client.get(status_url).json()["status"] == "pending"
    assert "Being checked" in client.get(page).content.decode()

    quarantined = dicom_file.quarantine_path
    with django_capture_on_commit_callbacks(execute=True):
        dicom_file_process.apply(args=[dicom_file.pk])
    dicom_file.refresh_from_db()
    assert client.get(status_url).json() == {
        "id": dicom_file.pk,
        "status": "ready",
        "label": "Ready",
        "reason": "",
        "url": f"{page}?file={dicom_file.pk}",
    }
    assert dicom_file.manufacturer == "Philips Medical Systems" and dicom_file.model_name == "CX50"
    assert dicom_file.frame_count == 1 and (dicom_file.columns, dicom_file.rows) == (800, 350)
    assert dicom_file.acquired_on.isoformat() == "2011-05-25"
    assert len(dicom_file.regions) == 2 and dicom_file.burned_in_annotation
    # The raw upload is gone; only the de-identified file and the previews remain.
    assert dicom_file.quarantine_path == "" and not default_storage.exists(quarantined)
    html = client.get(page).content.decode()
    assert "not on the visit date" in html
    assert "burned-in" in html
    frame = client.get(reverse("lesions:dicom-frame", args=[dicom_file.pk, 1]))
    assert frame.status_code == 200 and frame["Content-Type"] == "image/png"
    assert b"".join(frame.streaming_content)[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_web_process_does_not_judge_the_bytes(
    client, coordinator, baseline, lesions, django_capture_on_commit_callbacks, celery_eager
):
    sign_in(client, coordinator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("lesions:dicom-upload", args=[baseline.pk, lesions[0].pk]),
            {"files": [SimpleUploadedFile("notes.dcm", b"just some text, not an image")]},
        )
    # Accepted for checking by the web request; the worker's sandbox rejects it.
    dicom_file = DicomFile.objects.get()
    dicom_file.refresh_from_db()
    assert dicom_file.status == DicomStatus.REJECTED
    assert dicom_file.rejection_reason == "Not a DICOM file (no DICOM file header)."


@override_settings(DICOM_MAX_UPLOAD_MB=1)
def test_a_file_over_the_size_limit_is_stopped_while_uploading(client, coordinator, baseline, lesions):
    sign_in(client, coordinator)
    big = SimpleUploadedFile("big.dcm", b"\0" * (1024 * 1024 + 10))
    small = SimpleUploadedFile("small.dcm", sample("examples_palette.dcm"))
    response = client.post(
        reverse("lesions:dicom-upload", args=[baseline.pk, lesions[0].pk]),
        {"files": [big, small]},
        follow=True,
    )
    text = response.content.decode()
    assert "big.dcm was not uploaded: it is larger than the limit of 1 MB per file." in text
    assert list(DicomFile.objects.values_list("original_name", flat=True)) == ["small.dcm"]


def test_several_files_at_once_multi_frame_and_structured_report(ingest, lesions):
    clip = ingest(sample("examples_ybr_color.dcm"), "clip.dcm")
    assert clip.status == DicomStatus.READY and clip.frame_count == 30 and len(clip.preview_paths) == 30
    assert clip.sop_class_name == "Ultrasound Multi-frame Image Storage (retired)"
    report = ingest(sample("test-SR.dcm"), "report.dcm")
    assert report.status == DicomStatus.READY and report.preview_paths == []
    assert report.sr_measurements[0] == {
        "concept": "Diameter",
        "value": 3.0,
        "units": "cm",
        "units_meaning": "Length Unit",
        "mm": 30.0,
    }
    for name in ("examples_rgb_color.dcm", "examples_jpeg2k.dcm", "ExplVR_BigEnd.dcm"):
        assert ingest(sample(name), name).status == DicomStatus.READY, name


# --- De-identification ------------------------------------------------------------------------

# PS3.15 Annex E basic profile: identifying elements (written out here, independently of the
# module's table) that must leave the file or be emptied.
IDENTIFYING = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientAge",
    "PatientAddress",
    "OtherPatientIDsSequence",
    "OtherPatientNames",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "StationName",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "AcquisitionDate",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "ContentDate",
    "ContentTime",
    "InstanceCreationDate",
    "InstanceCreationTime",
    "DeviceSerialNumber",
    "StudyDescription",
    "SeriesDescription",
    "ImageComments",
    "ProtocolName",
    "RequestingPhysician",
    "ObservationDateTime",
    "ContentSequence",
    "VerifyingObserverSequence",
]
SAMPLES = [
    "examples_palette.dcm",
    "examples_ybr_color.dcm",
    "examples_rgb_color.dcm",
    "examples_jpeg2k.dcm",
    "ExplVR_BigEnd.dcm",
    "test-SR.dcm",
]


@pytest.mark.parametrize("name", SAMPLES)
def test_deidentification_removes_every_identifying_element_the_sample_carries(name, ingest, participant):
    original = pydicom.dcmread(get_testdata_file(name))
    carried = [k for k in IDENTIFYING if k in original and str(original[k].value).strip()]
    assert carried, "the sample carries identifying elements"
    dicom_file = ingest(sample(name), name)
    cleaned = stored_dataset(dicom_file)
    for keyword in carried:
        if keyword in ("PatientName", "PatientID"):
            assert str(cleaned[keyword].value) == participant.study_id
        else:
            assert keyword not in cleaned or not str(cleaned[keyword].value).strip(), keyword
    assert not any(element.tag.is_private for element in cleaned.iterall())
    assert cleaned.PatientIdentityRemoved == "YES"
    assert cleaned.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        if keyword in original:
            assert cleaned[keyword].value != original[keyword].value
    assert cleaned.SOPClassUID == original.SOPClassUID
    # The original's name text is nowhere in the stored bytes.
    with default_storage.open(dicom_file.deidentified_path, "rb") as handle:
        stored = handle.read()
    patient_name = str(original.get("PatientName", "")).strip()
    if patient_name:
        assert patient_name.encode() not in stored


def test_the_same_uid_is_replaced_by_the_same_new_uid(ingest, lesions):
    first = stored_dataset(ingest(sample("examples_palette.dcm"), "a.dcm"))
    second = stored_dataset(ingest(sample("examples_palette.dcm"), "b.dcm", lesion=lesions[1]))
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.StudyInstanceUID.startswith("2.25.")
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID


# --- Hostile files ----------------------------------------------------------------------------


def _file_meta(sop_class) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_image() -> bytes:
    ds = Dataset()
    ds.file_meta = _file_meta(CTImageStorage)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, generate_uid(), "CT"
    ds.PatientName = "Doe^Jane"
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = b"\0" * 32
    return _to_bytes(ds)


def dicomdir() -> bytes:
    ds = Dataset()
    ds.file_meta = _file_meta(MediaStorageDirectoryStorage)
    ds.FileSetID = "SCANS"
    ds.DirectoryRecordSequence = Sequence([])
    return _to_bytes(ds)


def deeply_nested(levels: int = 60) -> bytes:
    ds = Dataset()
    ds.file_meta = _file_meta("1.2.840.10008.5.1.4.1.1.6.1")
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.6.1", generate_uid()
    inner = Dataset()
    for _ in range(levels):
        outer = Dataset()
        outer.ReferencedSeriesSequence = Sequence([inner])
        inner = outer
    ds.ReferencedSeriesSequence = Sequence([inner])
    return _to_bytes(ds)


def pixel_bomb() -> bytes:
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    ds.NumberOfFrames, ds.Rows, ds.Columns = 1000, 4000, 4000
    return _to_bytes(ds)


def huge_declared_length() -> bytes:
    raw = bytearray(sample("examples_palette.dcm"))
    # Manufacturer (0008,0070) LO: claim a 4 GB value in a file of a few hundred kB.
    at = raw.find(b"\x08\x00\x70\x00LO")
    assert at > 0
    raw[at : at + 8] = b"\x08\x00\x70\x00UN\x00\x00"
    raw[at + 8 : at + 8] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(raw)


def wrong_lengths() -> bytes:
    raw = bytearray(sample("examples_palette.dcm"))
    at = raw.find(b"\xe0\x7f\x10\x00")  # Pixel Data: declare far fewer bytes than the image needs
    raw[at + 8 : at + 12] = struct.pack("<I", 1000)
    return bytes(raw[: at + 12 + 1000])


HOSTILE = {
    "non-DICOM bytes": (lambda: b"MZ\x90\x00" + b"\xff" * 5000, "Not a DICOM file"),
    "empty after the header": (lambda: b"\0" * 128 + b"DICM", "Not an ultrasound image"),
    "truncated": (lambda: sample("examples_palette.dcm")[:3000], "no image"),
    "truncated in the pixels": (lambda: sample("examples_palette.dcm")[:-5000], "damaged or truncated"),
    "wrong lengths": (wrong_lengths, "damaged or truncated"),
    "huge declared length": (huge_declared_length, "refused"),
    "deeply nested sequences": (deeply_nested, "nested"),
    "DICOMDIR": (dicomdir, "DICOMDIR"),
    "CT image": (ct_image, "Not an ultrasound image or structured report: CT Image Storage (modality CT)"),
    "pixel bomb": (pixel_bomb, "too large"),
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_hostile_file_is_rejected_with_a_reason_in_time(kind, ingest):
    make, expected = HOSTILE[kind]
    started = time.monotonic()
    dicom_file = ingest(make(), f"{kind}.dcm")
    assert time.monotonic() - started < WALL_CLOCK_SECONDS + 10
    assert dicom_file.status == DicomStatus.REJECTED
    assert expected in dicom_file.rejection_reason
    assert dicom_file.deidentified_path == "" and dicom_file.preview_paths == []
    assert dicom_file.quarantine_path == ""


def test_processing_twice_changes_nothing(ingest):
    dicom_file = ingest(sample("examples_palette.dcm"))
    before = (dicom_file.deidentified_path, list(dicom_file.preview_paths))
    assert dicom_file_process.apply(args=[dicom_file.pk]).get() == "ready"
    dicom_file.refresh_from_db()
    assert (dicom_file.deidentified_path, dicom_file.preview_paths) == before


# --- Access -----------------------------------------------------------------------------------


def _urls(dicom_file):
    return [
        reverse("lesions:dicom-page", args=[dicom_file.visit_id, dicom_file.lesion_id]),
        reverse("lesions:dicom-status", args=[dicom_file.pk]),
        reverse("lesions:dicom-frame", args=[dicom_file.pk, 1]),
        reverse("lesions:dicom-download", args=[dicom_file.pk]),
    ]


def test_another_sites_user_gets_404_for_every_image_url(ingest, make_user, site_b):
    dicom_file = ingest(sample("examples_palette.dcm"))
    client = sign_in(Client(), make_user(role=Role.COORDINATOR, sites=[site_b]))
    for url in _urls(dicom_file):
        assert client.get(url).status_code == 404, url


def test_anonymous_is_sent_to_sign_in(ingest):
    dicom_file = ingest(sample("examples_palette.dcm"))
    for url in _urls(dicom_file):
        response = Client().get(url)
        assert response.status_code == 302 and "login" in response["Location"], url


def test_monitor_views_and_downloads_but_cannot_upload_or_measure(
    ingest, make_user, site_a, baseline, lesions
):
    dicom_file = ingest(sample("examples_palette.dcm"))
    client = sign_in(Client(), make_user(role=Role.MONITOR, sites=[site_a]))
    page = client.get(_urls(dicom_file)[0])
    assert page.status_code == 200
    assert 'id="dicom-upload-form"' not in page.content.decode()
    assert 'id="image-measurement-form"' not in page.content.decode()
    download = client.get(_urls(dicom_file)[3])
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert pydicom.dcmread(io.BytesIO(b"".join(download.streaming_content))).PatientIdentityRemoved == "YES"
    upload = client.post(
        reverse("lesions:dicom-upload", args=[baseline.pk, lesions[0].pk]),
        {"files": [SimpleUploadedFile("x.dcm", sample("examples_palette.dcm"))]},
    )
    assert upload.status_code == 403
    measure = client.post(reverse("lesions:dicom-measurement", args=[baseline.pk, lesions[0].pk]), {})
    assert measure.status_code == 403


# --- Caliper and measurement -------------------------------------------------------------------


def caliper(client, dicom_file, points, frame=1):
    return client.post(
        reverse("lesions:dicom-caliper", args=[dicom_file.pk]),
        json.dumps({"frame": frame, "points": points}),
        content_type="application/json",
    )


def test_caliper_gives_millimetres_from_the_calibration(client, coordinator, ingest):
    dicom_file = ingest(sample("examples_palette.dcm"))
    sign_in(client, coordinator)
    response = caliper(client, dicom_file, {"length": [[200, 100], [300, 100]]})
    assert response.status_code == 200
    assert response.json()["distances"]["length"]["mm"] == "26.2"
    banner = caliper(client, dicom_file, {"length": [[10, 10], [300, 100]]})
    assert banner.status_code == 400 and "inside the calibrated 2D tissue image" in banner.json()["error"]


def two_regions_in_the_image() -> bytes:
    """The palette sample with its Doppler region moved inside the picture (rows 300-349), and
    its tissue region ending above it (rows 60-290)."""
    ds = pydicom.dcmread(get_testdata_file("examples_palette.dcm"))
    tissue, trace = ds.SequenceOfUltrasoundRegions
    tissue.RegionLocationMaxY1 = 290
    trace.RegionLocationMinY0, trace.RegionLocationMaxY1 = 300, 349
    trace.RegionSpatialFormat, trace.RegionDataType = 1, 1  # even a second tissue image
    trace.PhysicalUnitsXDirection = trace.PhysicalUnitsYDirection = 3
    trace.PhysicalDeltaX = trace.PhysicalDeltaY = 0.01
    return _to_bytes(ds)


def test_caliper_points_in_two_regions_are_refused(client, coordinator, ingest):
    dicom_file = ingest(two_regions_in_the_image())
    sign_in(client, coordinator)
    refused = caliper(client, dicom_file, {"length": [[300, 200], [300, 320]]})
    assert refused.status_code == 400 and "different regions" in refused.json()["error"]
    inside = caliper(client, dicom_file, {"length": [[300, 310], [400, 310]]})
    assert inside.json()["distances"]["length"] == {"mm": "10.0", "mm_exact": 10.0, "region": 1}


def test_caliper_is_refused_on_an_uncalibrated_file(client, coordinator, ingest):
    dicom_file = ingest(sample("ExplVR_BigEnd.dcm"))
    sign_in(client, coordinator)
    refused = caliper(client, dicom_file, {"length": [[1, 1], [10, 10]]})
    assert refused.status_code == 400 and "no calibration" in refused.json()["error"]
    page = client.get(_urls(dicom_file)[0]).content.decode()
    assert "The caliper is not available: enter the measurement by hand." in page


def _measurement_post(dicom_file, **overrides):
    data = {
        "file": dicom_file.pk,
        "m-source": "caliper",
        "m-frame_number": "1",
        "m-caliper_points": json.dumps(
            {"length": [[200, 100], [300, 100]], "width": [[300, 200], [330, 240]]}
        ),
        "m-length_mm": "99.9",  # whatever the browser says, the server recomputes from the points
        "m-width_mm": "13.1",
        "m-depth_mm": "",
        "m-depth_not_measurable_reason": "shadowing",
        "m-posterior_shadowing": "on",
        "m-doppler_signal": "none",
        "m-operator": "Casey Coordinator",
        "m-device": "Philips CX50",
    }
    data.update(overrides)
    return data


def test_caliper_measurement_is_saved_with_its_provenance(client, coordinator, ingest, baseline, lesions):
    dicom_file = ingest(sample("examples_palette.dcm"))
    sign_in(client, coordinator)
    response = client.post(
        reverse("lesions:dicom-measurement", args=[baseline.pk, lesions[0].pk]), _measurement_post(dicom_file)
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    saved = UltrasoundMeasurement.objects.get(lesion=lesions[0], visit=baseline)
    assert (saved.length_mm, saved.width_mm) == (Decimal("26.2"), Decimal("13.1"))
    assert saved.source == MeasurementSource.CALIPER and saved.dicom_file == dicom_file
    assert saved.frame_number == 1
    assert saved.caliper_points == {
        "length": [[200.0, 100.0], [300.0, 100.0]],
        "width": [[300.0, 200.0], [330.0, 240.0]],
    }

    # Typed over in the visit table, the length is a manual value: the points are dropped.
    visit_lesions_save(
        actor=coordinator,
        visit=baseline,
        rows=[
            LesionRow(
                lesions[0],
                measurement=measurement("20.0", "13.1", None),
                measurement_version=saved.row_version,
            )
        ],
        reason="re-measured on the scanner",
    )
    saved.refresh_from_db()
    assert saved.length_mm == Decimal("20.0")
    assert (
        saved.source == MeasurementSource.MANUAL and saved.caliper_points == {} and saved.dicom_file is None
    )


def test_caliper_points_off_the_tissue_image_are_refused_on_save(
    client, coordinator, ingest, baseline, lesions
):
    dicom_file = ingest(sample("examples_palette.dcm"))
    sign_in(client, coordinator)
    points = json.dumps({"length": [[10, 10], [300, 200]], "width": [[300, 200], [330, 240]]})
    response = client.post(
        reverse("lesions:dicom-measurement", args=[baseline.pk, lesions[0].pk]),
        _measurement_post(dicom_file, **{"m-caliper_points": points}),
    )
    assert response.status_code == 400
    assert "Length: Both points must be inside the calibrated 2D tissue image" in response.content.decode()
    assert not UltrasoundMeasurement.objects.exists()


def test_the_participant_timeline_shows_a_thumbnail_of_each_ready_image(
    ingest, participant, coordinator, client, make_user, site_b
):
    from tests.conftest import sign_in
    from trial.roles import Role

    ready = ingest(sample("examples_palette.dcm"))
    ingest(b"not dicom at all", name="junk.dcm")  # rejected files get no thumbnail
    page = sign_in(client, coordinator).get(f"/participants/{participant.pk}/timeline/").content.decode()
    frame_url = f"/dicom/{ready.pk}/frames/1.png"
    assert page.count("/frames/1.png") == 1 and frame_url in page
    assert "may show burned-in text" in page
    assert client.get(frame_url).headers["Content-Type"] == "image/png"
    # The thumbnail is served only to users of the participant's site.
    stranger = make_user(role=Role.COORDINATOR, sites=[site_b])
    assert sign_in(client, stranger).get(frame_url).status_code == 404


def test_an_upload_whose_task_was_lost_is_processed_by_the_sweep(
    coordinator, baseline, lesions, celery_eager, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # the task is never enqueued: lost
        dicom_file = services.dicom_file_upload(
            actor=coordinator,
            lesion=lesions[0],
            visit=baseline,
            upload=SimpleUploadedFile("scan.dcm", sample("examples_palette.dcm")),
        )
    assert dicom_files_requeue_stuck.apply().result == 0  # a fresh upload is left to its own task
    dicom_file.refresh_from_db()
    assert dicom_file.status == DicomStatus.PENDING

    with time_machine.travel(dicom_file.uploaded_at + services.STUCK_AFTER + dt.timedelta(seconds=1)):
        assert dicom_files_requeue_stuck.apply().result == 1
    dicom_file.refresh_from_db()
    assert dicom_file.status == DicomStatus.READY and dicom_file.quarantine_path == ""
    with time_machine.travel(dicom_file.uploaded_at + dt.timedelta(hours=2)):
        assert dicom_files_requeue_stuck.apply().result == 0  # processed files are never re-sent


# --- Review of burned-in text ------------------------------------------------------------------


def flagged_image(ingest) -> DicomFile:
    dicom_file = ingest(sample("examples_palette.dcm"))
    DicomFile.objects.filter(pk=dicom_file.pk).update(burned_in_annotation=True)  # the header says so
    dicom_file.refresh_from_db()
    return dicom_file


def review(client, dicom_file, **data):
    url = reverse("lesions:dicom-pixel-review", args=[dicom_file.visit_id, dicom_file.lesion_id])
    return client.post(url, {"file": dicom_file.pk, **{f"review-{k}": v for k, v in data.items()}})


def test_a_reviewer_clears_the_burned_in_flag_with_who_and_when(ingest, coordinator, client):
    dicom_file = flagged_image(ingest)
    sign_in(client, coordinator)
    page = client.get(reverse("lesions:dicom-page", args=[dicom_file.visit_id, dicom_file.lesion_id]))
    assert 'id="burned-in-flag"' in page.content.decode() and "Save the review" in page.content.decode()

    response = review(client, dicom_file, outcome="clear", note="only the probe name")
    assert response.status_code == 302
    dicom_file.refresh_from_db()
    assert (dicom_file.burned_in_annotation, dicom_file.pixel_review) == (False, "clear")
    assert dicom_file.pixel_reviewed_by == coordinator and dicom_file.pixel_reviewed_at is not None
    shown = client.get(response["Location"]).content.decode()
    assert "Reviewed for burned-in text: No identifying text in the image" in shown
    assert coordinator.full_name in shown
    events = event_model_for(DicomFile).objects.filter(pgh_obj_id=dicom_file.pk).order_by("pgh_id")
    last = events.last()
    assert last.burned_in_annotation is False and "only the probe name" in last.pgh_context["reason"]
    assert events.filter(burned_in_annotation=True).exists()  # what the header said stays on record


def test_identifying_text_keeps_the_flag(ingest, coordinator, client):
    dicom_file = flagged_image(ingest)
    sign_in(client, coordinator)
    review(client, dicom_file, outcome="identifying")
    dicom_file.refresh_from_db()
    assert (dicom_file.burned_in_annotation, dicom_file.pixel_review) == (True, "identifying")


@pytest.mark.parametrize("outcome", ["", "maybe", "<script>x</script>"])
def test_a_review_without_a_valid_outcome_changes_nothing(ingest, coordinator, client, outcome):
    dicom_file = flagged_image(ingest)
    sign_in(client, coordinator)
    response = review(client, dicom_file, outcome=outcome)
    assert response.status_code == 400 and 'id="burned-in-flag"' in response.content.decode()
    dicom_file.refresh_from_db()
    assert (dicom_file.burned_in_annotation, dicom_file.pixel_review) == (True, "")


def test_an_unflagged_image_has_nothing_to_review_and_a_monitor_cannot_review(
    ingest, coordinator, make_user, client
):
    dicom_file = ingest(sample("examples_palette.dcm"))
    DicomFile.objects.filter(pk=dicom_file.pk).update(burned_in_annotation=False)
    sign_in(client, coordinator)
    response = review(client, dicom_file, outcome="clear")
    assert response.status_code == 400 and "nothing to review" in response.content.decode()
    monitor = make_user(role=Role.MONITOR, sites=[dicom_file.visit.participant.site])
    sign_in(client, monitor)
    assert review(client, flagged_image(ingest), outcome="clear").status_code == 403
