"""Issue #10 item 3, DICOM mutation fuzzer: 1,000 corrupted files, each accepted or rejected with
a reason, none hanging, and the web process always answering.

The corrupted files are made deterministically (seed 10) from three valid ultrasound files (a
generated single-frame image with calibrated regions, a generated multi-frame clip, and pydicom's
real Philips palette image) by eight kinds of damage: bit flips, truncation, corrupted length
fields, duplicated or out-of-order tags, huge declared value lengths, deeply nested sequences, a
transfer syntax that does not match the encoding, and pixel data whose size does not match the
declared image (plus impossible numbers in the calibration and frame count).

All 1,000 go through `run_sandbox()`, the path the Celery task takes in production: a forked,
resource-limited child per file with the production wall-clock limit, two files at a time (one
zygote per thread, as one per worker process in production). 50 of them, spread over the kinds,
also go through the real upload view and the real task, while the upload page and the status
endpoint are asked after each one.
"""

from __future__ import annotations

import functools
import io
import json
import queue
import random
import statistics
import struct
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from lesions.dicom import sandbox
from lesions.models import DicomFile, DicomStatus
from lesions.tasks import DICOM_RETRY
from tests.conftest import sign_in
from tests.lesions.conftest import (  # noqa: F401 - shared fixtures
    consent_v1,
    consented,
    coordinator,
    eligible_screening,
    frozen_today,
    investigator,
    lesions,
    participant,
    screen,
)
from tests.lesions.test_dicom_ingest import _file_meta, _to_bytes, sample

SEED = 10
PER_KIND = 125  # x 8 kinds = 1,000 files
THROUGH_THE_VIEW = 50
PARALLEL = 2  # the machine's cores

# Value representations with a 4-byte length after two reserved bytes (PS3.5 7.1.2).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
SHORT_VRS = {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
    b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
}  # fmt: skip


# --- Valid files to start from ------------------------------------------------------------------


def _ultrasound(frames: int) -> Dataset:
    ds = Dataset()
    sop_class = UltrasoundMultiFrameImageStorage if frames > 1 else UltrasoundImageStorage
    ds.file_meta = _file_meta(sop_class)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, generate_uid(), "US"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.StudyDate = "Doe^Jane", "MRN-1", "20261103"
    ds.Manufacturer, ds.ManufacturerModelName = "Demo", "US-1"
    ds.Rows, ds.Columns = 48, 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if frames > 1:
        ds.NumberOfFrames = frames
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType, region.RegionFlags = 1, 1, 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = 63, 47
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.01
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    ds.PixelData = bytes(range(256)) * (48 * 64 * frames // 256)
    return ds


def base_files() -> dict[str, bytes]:
    return {
        "single frame": _to_bytes(_ultrasound(1)),
        "clip": _to_bytes(_ultrasound(3)),
        "palette": sample("examples_palette.dcm"),
    }


# --- Kinds of damage ----------------------------------------------------------------------------


@functools.cache
def element_headers(data: bytes) -> list[tuple[int, bytes]]:
    """Offsets of what look like explicit-VR element headers between the preamble and the pixel
    data (included), with their VR."""
    found = []
    pixels = data.rfind(b"\xe0\x7f\x10\x00")
    for at in range(132, (pixels + 1 if pixels > 0 else len(data) - 8)):
        vr = data[at + 4 : at + 6]
        if vr in LONG_VRS and data[at + 6 : at + 8] == b"\0\0" or vr in SHORT_VRS:
            found.append((at, vr))
    return found


def _element_end(data: bytes, at: int, vr: bytes) -> int | None:
    if vr in LONG_VRS:
        (length,) = struct.unpack_from("<I", data, at + 8)
        start = at + 12
    else:
        (length,) = struct.unpack_from("<H", data, at + 6)
        start = at + 8
    end = start + length
    return end if length != 0xFFFFFFFF and end <= len(data) else None


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 24)):
        at = rng.randrange(128, len(damaged))
        damaged[at] ^= 1 << rng.randrange(8)
    return bytes(damaged)


def truncation(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.choice([rng.randrange(0, 200), rng.randrange(132, len(data))])]


def length_corruption(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        at, vr = rng.choice(element_headers(data))
        if vr in LONG_VRS:
            value = rng.choice([0, 1, 3, 0xFFFFFFFF, len(data), len(data) * 2, rng.getrandbits(32)])
            struct.pack_into("<I", damaged, at + 8, value)
        else:
            struct.pack_into("<H", damaged, at + 6, rng.choice([0, 1, 0xFFFF, rng.getrandbits(16)]))
    return bytes(damaged)


def tag_duplication(data: bytes, rng: random.Random) -> bytes:
    headers = element_headers(data)
    for _ in range(20):
        at, vr = rng.choice(headers)
        end = _element_end(data, at, vr)
        if end is not None:
            element = data[at:end]
            where = end if rng.random() < 0.5 else rng.choice(headers)[0]  # again, or out of order
            return data[:where] + element * rng.randint(1, 3) + data[where:]
    return data + data[132:200]


def huge_lengths(data: bytes, rng: random.Random) -> bytes:
    damaged = bytearray(data)
    long_ones = [at for at, vr in element_headers(data) if vr in LONG_VRS]
    at = rng.choice(long_ones)
    struct.pack_into("<I", damaged, at + 8, rng.choice([0xFFFFFFF0, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE]))
    return bytes(damaged)


def nested_sequences(data: bytes, rng: random.Random) -> bytes:
    """Content Sequence items nested 10 to 20,000 deep, closed or left open, before the pixels."""
    depth = rng.choice([10, 100, 1_000, 5_000, 20_000])
    sequence = b"\x40\x00\x30\xa7SQ\0\0\xff\xff\xff\xff"
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    closing = b"\xfe\xff\x0d\xe0\0\0\0\0" + b"\xfe\xff\xdd\xe0\0\0\0\0"
    nested = (sequence + item) * depth + (closing * depth if rng.random() < 0.7 else b"")
    at = data.rfind(b"\xe0\x7f\x10\x00")
    return data[:at] + nested + data[at:]


def wrong_transfer_syntax(data: bytes, rng: random.Random) -> bytes:
    """The file meta names another transfer syntax than the data set is written in (the meta's
    group length is kept right, so only the mismatch itself is hostile)."""
    uid = rng.choice(
        [
            ImplicitVRLittleEndian,
            ExplicitVRBigEndian,
            DeflatedExplicitVRLittleEndian,
            JPEGBaseline8Bit,
            JPEG2000Lossless,
            RLELossless,
            "1.2.3.4.5.6.7.8.9",
        ]
    ).encode()
    value = uid + b"\0" * (len(uid) % 2)
    at = data.find(b"\x02\x00\x10\x00UI")
    (old_length,) = struct.unpack_from("<H", data, at + 6)
    damaged = bytearray(data[:at] + data[at : at + 6] + struct.pack("<H", len(value)) + value)
    damaged += data[at + 8 + old_length :]
    group = damaged.find(b"\x02\x00\x00\x00UL\x04\x00")
    (group_length,) = struct.unpack_from("<I", damaged, group + 8)
    struct.pack_into("<I", damaged, group + 8, group_length + len(value) - old_length)
    return bytes(damaged)


def pixel_mismatch(data: bytes, rng: random.Random) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    change = rng.randrange(7)
    if change == 0:
        ds.Rows, ds.Columns = rng.choice([(1, 1), (4096, 4096), (65535, 1), (48, 65535)])
    elif change == 1:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = rng.choice([(16, 16, 15), (32, 32, 31), (1, 1, 0)])
    elif change == 2:
        ds.NumberOfFrames = 9999  # a placeholder, written over below with text pydicom would refuse
    elif change == 3:
        ds.PixelData = ds.PixelData[: rng.randrange(len(ds.PixelData))]
    elif change == 4:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = rng.choice([(3, "RGB"), (4, "ARGB"), (0, "X")])
    elif change == 5:
        ds.PixelData = ds.PixelData + b"\0" * rng.randrange(1, 100_000)
    elif "SequenceOfUltrasoundRegions" in ds:  # impossible calibration numbers
        region = ds.SequenceOfUltrasoundRegions[0]
        region.PhysicalDeltaX = rng.choice([float("nan"), float("inf"), float("-inf"), 1e308, 0.0, -0.01])
        region.RegionLocationMaxX1 = rng.choice([0, 4294967295, 1])
    else:
        ds.Rows = 0
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    frames = rng.choice([b"0   ", b"-1  ", b"1e9 ", b"abc ", b"2.5 ", b"NaN ", b"\0\0\0\0"])
    return buffer.getvalue().replace(
        b"\x28\x00\x08\x00IS\x04\x009999", b"\x28\x00\x08\x00IS\x04\x00" + frames
    )


KINDS = {
    "bit flips": bit_flips,
    "truncation": truncation,
    "length fields": length_corruption,
    "duplicated tags": tag_duplication,
    "huge lengths": huge_lengths,
    "nested sequences": nested_sequences,
    "wrong transfer syntax": wrong_transfer_syntax,
    "pixel size mismatch": pixel_mismatch,
}


def corpus() -> list[tuple[str, bytes]]:
    """The 1,000 corrupted files, the same on every run."""
    rng = random.Random(SEED)
    bases = list(base_files().values())
    files = []
    for kind, damage in KINDS.items():
        for index in range(PER_KIND):
            files.append((kind, damage(bases[index % len(bases)], rng)))
    return files


# --- Judging one file -----------------------------------------------------------------------------

# How the sandbox ended a file when the reader gave no verdict of its own: each is a finding.
FINDINGS = {"timeout": "hang", "stopped": "crash", "failed": "crash", "no result": "crash"}


def judge(index: int, kind: str, data: bytes) -> tuple[int, str, str, str, float]:
    """(index, kind, 'accepted' | 'rejected' | 'crash' | 'hang', reason, seconds) for one file,
    judged by the sandbox exactly as the task judges an upload."""
    with tempfile.TemporaryDirectory(prefix="dicom-fuzz-") as scratch:
        raw = Path(scratch) / "upload.bin"
        raw.write_bytes(data)
        started = time.monotonic()
        result = sandbox.run_sandbox(raw, Path(scratch) / "out", key=b"k" * 32, pseudonym="A1-001")
        seconds = time.monotonic() - started
        if result.failure:
            return index, kind, FINDINGS[result.failure], result.reason, seconds
        if not result.accepted:
            return index, kind, "rejected", result.reason, seconds
        try:
            # What the task stores in PostgreSQL (jsonb refuses NaN), and the files it keeps.
            json.dumps(result.metadata, allow_nan=False)
            assert result.deidentified.stat().st_size > 0
            assert all(frame.stat().st_size > 0 for frame in result.frames)
        except (ValueError, AssertionError, OSError) as exc:
            return index, kind, "crash", f"accepted, but {type(exc).__name__}: {exc}"[:300], seconds
    return index, kind, "accepted", "", seconds


def judge_all(files: list[tuple[str, bytes]]) -> tuple[list[tuple[int, str, str, str, float]], set[int]]:
    """Every file through the sandbox, PARALLEL at a time; the results, and the process ids of the
    zygotes used (one per thread unless one was lost and replaced)."""
    jobs: queue.Queue = queue.Queue()
    for index, (kind, data) in enumerate(files):
        jobs.put((index, kind, data))
    results, zygotes, errors = [], set(), []

    def work():
        try:
            while True:
                try:
                    job = jobs.get_nowait()
                except queue.Empty:
                    return
                results.append(judge(*job))
                zygotes.add(sandbox._zygotes.current.process.pid)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            sandbox.zygote_stop()

    threads = [threading.Thread(target=work) for _ in range(PARALLEL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return sorted(results), zygotes


@pytest.fixture(scope="module")
def judged() -> list[tuple[int, str, str, str, float]]:
    started = time.monotonic()
    results, zygotes = judge_all(corpus())
    seconds = [result[-1] for result in results]
    print(  # noqa: T201 - the timings are the report
        f"\nDICOM fuzz through the sandbox: {len(results)} files in {time.monotonic() - started:.1f} s, "
        f"{PARALLEL} at a time; per file median {statistics.median(seconds):.3f} s, "
        f"max {max(seconds):.2f} s; zygotes {len(zygotes)}"
    )
    # No zygote was lost on the way: one per thread served every file.
    assert len(zygotes) == PARALLEL
    return results


def test_a_thousand_corrupted_files_are_each_accepted_or_rejected_with_a_reason(judged):
    outcomes = Counter(verdict for _index, _kind, verdict, _reason, _seconds in judged)
    by_kind = Counter((kind, verdict) for _index, kind, verdict, _reason, _seconds in judged)
    print(f"\nDICOM fuzz: {len(judged)} files: {dict(outcomes)}; by kind: {dict(sorted(by_kind.items()))}")  # noqa: T201 - the counts are the report
    assert len(judged) == 1000
    crashes = [(kind, reason) for _index, kind, verdict, reason, _s in judged if verdict in ("crash", "hang")]
    assert not crashes, crashes[:10]
    assert all(reason for _index, _kind, verdict, reason, _s in judged if verdict == "rejected")
    # Well inside the task's time limit, each of them (the sandbox's own limit is the hard stop).
    slowest = max(seconds for *_rest, seconds in judged)
    assert slowest < min(sandbox.WALL_CLOCK_SECONDS, DICOM_RETRY["soft_time_limit"]), slowest
    # Every kind of damage is caught somewhere, and the fuzzer is not rejecting everything.
    assert all(by_kind[(kind, "rejected")] for kind in KINDS)
    assert outcomes["accepted"] > 0


@pytest.mark.django_db
def test_corrupted_uploads_through_the_page_never_cost_the_web_process(
    judged, client, request, django_capture_on_commit_callbacks, celery_eager
):
    coordinator_user = request.getfixturevalue("coordinator")
    participant_record = request.getfixturevalue("participant")
    lesion = request.getfixturevalue("lesions")[0]
    files = corpus()
    visit = participant_record.visits.get(code="W0")
    sign_in(client, coordinator_user)
    page = reverse("lesions:dicom-page", args=[visit.pk, lesion.pk])
    upload = reverse("lesions:dicom-upload", args=[visit.pk, lesion.pk])
    chosen = list(range(0, len(files), len(files) // THROUGH_THE_VIEW))[:THROUGH_THE_VIEW]
    verdicts = Counter()
    for index in chosen:
        kind, data = files[index]
        with django_capture_on_commit_callbacks(execute=True):  # the task runs: the real sandbox child
            response = client.post(upload, {"files": [SimpleUploadedFile(f"fuzz-{index}.dcm", data)]})
        assert response.status_code == 302, (index, kind)
        dicom_file = DicomFile.objects.latest("pk")
        status = client.get(reverse("lesions:dicom-status", args=[dicom_file.pk]))
        assert status.status_code == 200, (index, kind)
        answer = status.json()
        assert answer["status"] in (DicomStatus.READY, DicomStatus.REJECTED), (index, kind, answer)
        if answer["status"] == DicomStatus.REJECTED:
            assert answer["reason"], (index, kind)
        verdicts[answer["status"]] += 1
        assert client.get(page).status_code == 200, (index, kind)
    print(f"\nDICOM through the upload page and task: {len(chosen)} files: {dict(verdicts)}")  # noqa: T201 - the counts are the report
    assert sum(verdicts.values()) == THROUGH_THE_VIEW


def test_a_calibration_that_is_not_a_number_gives_no_region_and_stores_cleanly(tmp_path):
    """Found by the fuzzer: NaN in Physical Delta X reached the task's JSON, which jsonb refuses."""
    ds = _ultrasound(1)
    ds.SequenceOfUltrasoundRegions[0].PhysicalDeltaX = float("nan")
    raw, out = tmp_path / "nan.dcm", tmp_path / "out"
    raw.write_bytes(_to_bytes(ds))
    out.mkdir()
    outcome = sandbox.process(raw, out, key=b"k" * 32, pseudonym="A1-001", max_frames=5)
    assert outcome["accepted"] and outcome["metadata"]["regions"] == []
    json.dumps(outcome, allow_nan=False)
