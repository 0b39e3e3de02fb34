"""The DICOM sandbox's process handling (lesions/dicom/sandbox.py): a zygote per worker process
forks a limited child per file; a child past its wall-clock limit is killed, a lost or stuck zygote
is replaced, an interrupted task takes its zygote down with it, and the zygote holds none of the
worker's environment. Real processes throughout (no mocks): these are what keep a hostile upload
away from the worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from pydicom.data import get_testdata_file

from lesions.dicom import sandbox

PALETTE = Path(get_testdata_file("examples_palette.dcm"))


@pytest.fixture
def judge(tmp_path):
    """run_sandbox on a file, as the task calls it; the zygote is stopped after the test."""
    count = iter(range(1000))

    def run(path: Path = PALETTE, **kwargs) -> sandbox.SandboxResult:
        return sandbox.run_sandbox(
            path, tmp_path / f"out-{next(count)}", key=b"k" * 32, pseudonym="A1-001", **kwargs
        )

    yield run
    sandbox.zygote_stop()


def zygote_pid() -> int:
    return sandbox._zygotes.current.process.pid


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie is gone too: reaped by its parent later.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] == "Z"


def test_files_are_judged_by_children_of_one_zygote(judge):
    first = judge()
    assert first.accepted and first.failure == "" and first.deidentified.exists() and first.frames
    pid = zygote_pid()
    not_dicom = PALETTE.parent / "nonexistent.dcm"
    refused = judge(not_dicom)
    assert not refused.accepted and refused.failure == "failed"  # the child could not open it
    assert judge().accepted
    assert zygote_pid() == pid


def test_a_child_past_its_wall_clock_limit_is_killed_and_the_next_file_is_judged(judge):
    judge()  # the zygote is started: the limit below is the child's alone
    pid = zygote_pid()
    result = judge(timeout=0.001)
    assert not result.accepted and result.failure == "timeout"
    assert "took longer than" in result.reason
    assert judge().accepted
    assert zygote_pid() == pid


def test_a_lost_zygote_is_replaced(judge):
    judge()
    pid = zygote_pid()
    os.kill(pid, signal.SIGKILL)
    while not gone(pid):
        time.sleep(0.01)
    assert judge().accepted
    assert zygote_pid() != pid


def test_a_stuck_zygote_is_killed_and_replaced(judge):
    judge()
    pid = zygote_pid()
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    result = judge(timeout=0.5)
    assert time.monotonic() - started >= 0.5 + sandbox.ZYGOTE_GRACE_SECONDS
    assert result.accepted  # asked again of a new zygote
    assert zygote_pid() != pid and gone(pid)


def test_a_task_interrupted_while_waiting_takes_its_zygote_and_child_down(judge):
    """Celery's soft time limit arrives as an exception in the middle of run_sandbox: the zygote's
    answer would otherwise be read as the next file's, so the zygote is killed with its child."""
    judge()
    pid = zygote_pid()

    def soft_limit(signum, frame):
        raise SoftTimeLimitExceeded

    previous = signal.signal(signal.SIGALRM, soft_limit)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(SoftTimeLimitExceeded):
            judge()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert gone(pid)
    assert sandbox._zygotes.current is None
    assert judge().accepted


def test_the_zygote_has_none_of_the_workers_environment(judge, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://edc:secret@db/edc")
    monkeypatch.setenv("SECRET_KEY", "not-for-the-reader")
    sandbox.zygote_stop()
    judge()
    with open(f"/proc/{zygote_pid()}/environ", "rb") as environ:
        names = {entry.split(b"=", 1)[0].decode() for entry in environ.read().split(b"\0") if entry}
    assert names <= {
        "PATH",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONHASHSEED",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "LC_CTYPE",  # set by Python itself (PEP 538) when the locale is C
    }
