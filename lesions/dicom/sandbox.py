"""Parse an untrusted upload in a separate, resource-limited process.

`run_sandbox()` (called by the Celery task) hands the file to a *zygote*: a process of its own,
started once per worker process (per thread) as `python -m lesions.dicom.sandbox` with a clean
environment (no database URL, no secret key), which imports the reader (pydicom, NumPy, Pillow)
once and then forks a fresh child for every file. The child first limits itself (address space,
CPU seconds, size of the files it may write), then reads the file with pydicom, decides whether it
is accepted, reads its facts, renders a PNG per frame and writes the de-identified file; it writes
one JSON object to a pipe of its own. The zygote kills a child that passes the wall-clock limit and
reports how each child ended. A file that makes its child run out of memory, loop, crash or hang
costs that child only: never a web worker, never the Celery worker process, never the next file
(each child starts from the zygote's clean state, and the zygote itself never opens an upload).

Why a zygote: starting a new interpreter and importing pydicom, NumPy and Pillow cost far more
than reading a typical file (README, Reliability > Bad input has the figures); a fork of a
process that has already imported them costs a few milliseconds. The isolation is the same as
with a new interpreter per file: the child is a separate process with its own limits, it sees
only the request it was forked for (paths, the study's UID key, the participant's study id), its
standard input is /dev/null and its output goes to its own pipe, so it cannot talk to the zygote
or to the worker. The zygote imports neither Django nor the project's settings and has no
database access.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

# Limits of the child (generous for a 50 MB multi-frame clip, small for anything hostile).
MEMORY_LIMIT_BYTES = 1536 * 1024 * 1024
CPU_LIMIT_SECONDS = 30
OUTPUT_LIMIT_BYTES = 512 * 1024 * 1024
WALL_CLOCK_SECONDS = 60
MAX_PREVIEW_FRAMES = 300
# What a child may print (one JSON object of facts; a few kB in practice).
RESULT_LIMIT_BYTES = 4 * 1024 * 1024
# The zygote's import of the reader, and its answer after a child's wall-clock limit: past these,
# the zygote itself is taken as stuck, killed with its child, and replaced on the next file.
ZYGOTE_START_SECONDS = 30
ZYGOTE_GRACE_SECONDS = 5

DEIDENTIFIED_NAME = "deidentified.dcm"


@dataclass
class SandboxResult:
    accepted: bool
    reason: str = ""
    metadata: dict = field(default_factory=dict)
    deidentified: Path | None = None
    frames: list[Path] = field(default_factory=list)
    # How a refusal came about when the reader did not give one itself: "timeout" (wall clock),
    # "stopped" (killed by a signal: memory or CPU limit), "failed" (exited with an error),
    # "no result" (exited without printing its outcome). Empty for the reader's own verdicts.
    failure: str = ""


class ZygoteLost(Exception):
    """The zygote died or stopped answering; it has been killed and will be replaced."""


def _clean_environment(project_root: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(project_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # One thread per native library: each thread's arena would count against the limit, and
        # the zygote forks, which is only safe in a process with one thread.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


class _Zygote:
    """The parent's handle on one zygote process (one per worker process and thread)."""

    def __init__(self) -> None:
        project_root = Path(__file__).resolve().parents[2]
        self.owner = os.getpid()
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv: our interpreter and module, no shell
            [sys.executable, "-W", "ignore", "-m", "lesions.dicom.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=project_root,
            env=_clean_environment(project_root),
            start_new_session=True,  # its own process group: killed with its children
        )
        self._buffer = b""
        self._killed = False
        try:
            ready = self._read_line(time.monotonic() + ZYGOTE_START_SECONDS) == {"ready": True}
        except BaseException:
            self.kill()
            raise
        if not ready:
            self.kill()
            raise ZygoteLost("the zygote did not start")

    @property
    def usable(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None

    def ask(self, request: dict, deadline: float) -> dict:
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
        except OSError as exc:
            self.kill()
            raise ZygoteLost("the zygote is gone") from exc
        reply = self._read_line(deadline)
        if reply is None:
            self.kill()
            raise ZygoteLost("the zygote did not answer in time")
        return reply

    def _read_line(self, deadline: float) -> dict | None:
        stdout = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([stdout], [], [], remaining)[0]:
                return None
            chunk = os.read(stdout, 65536)
            if not chunk:  # the zygote exited
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return None

    def kill(self) -> None:
        if self._killed:  # once only: after the wait, its process group id may be reused
            return
        self._killed = True
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except OSError:  # already gone
            pass
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


_zygotes = threading.local()


def _zygote() -> _Zygote:
    zygote = getattr(_zygotes, "current", None)
    if zygote is None or not zygote.usable:
        if zygote is not None and zygote.owner == os.getpid():
            zygote.kill()
        zygote = _zygotes.current = _Zygote()
    return zygote


def zygote_stop() -> None:
    """Stop this thread's zygote now (it also stops by itself when this process exits)."""
    _discard_zygote()


def _discard_zygote() -> None:
    zygote = getattr(_zygotes, "current", None)
    _zygotes.current = None
    if zygote is not None and zygote.owner == os.getpid():
        zygote.kill()


def _ask(request: dict, timeout: float) -> dict:
    """The zygote's report on one file; a lost zygote is replaced and asked once more."""
    for attempt in (1, 2):
        try:
            return _zygote().ask(request, time.monotonic() + timeout + ZYGOTE_GRACE_SECONDS)
        except ZygoteLost:
            _discard_zygote()
            if attempt == 2:
                raise
        except BaseException:
            # Interrupted while a child may be running (Celery's soft time limit, a signal): the
            # zygote's answer would arrive for the next file, so it is killed with its child.
            _discard_zygote()
            raise
    raise AssertionError("unreachable")


def run_sandbox(
    raw_path: Path,
    out_dir: Path,
    *,
    key: bytes,
    pseudonym: str,
    timeout: float = WALL_CLOCK_SECONDS,
) -> SandboxResult:
    """Process `raw_path` in a child process; its outputs land in `out_dir` (created)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    request = {
        "raw": str(raw_path),
        "out": str(out_dir),
        "key": key.hex(),
        "pseudonym": pseudonym,
        "max_frames": MAX_PREVIEW_FRAMES,
        "timeout": timeout,
    }
    try:
        report = _ask(request, timeout)
    except ZygoteLost:
        logger.warning("DICOM sandbox: the zygote was lost twice on %s", raw_path.name)
        report = {"ended": "timeout"}
    ended = report.get("ended")
    if ended == "timeout":
        logger.warning("DICOM sandbox: %s passed the %s s limit", raw_path.name, timeout)
        return SandboxResult(
            False, f"Reading the file took longer than {int(timeout)} seconds: refused.", failure="timeout"
        )
    if ended == "signal":
        logger.warning(
            "DICOM sandbox: the reader of %s was stopped by signal %s", raw_path.name, report.get("signal")
        )
        return SandboxResult(
            False,
            "The file could not be read within the memory and time limits (the reader was stopped): refused.",
            failure="stopped",
        )
    if ended != "exit" or report.get("code") != 0:
        logger.warning("DICOM sandbox: the reader of %s failed (%s)", raw_path.name, report)
        return SandboxResult(
            False, "The file could not be read (the reader failed): refused.", failure="failed"
        )
    try:
        outcome = json.loads(str(report.get("output", "")).strip().splitlines()[-1])
        if not isinstance(outcome, dict):
            raise ValueError(outcome)
    except (ValueError, IndexError):
        return SandboxResult(
            False, "The file could not be read (no result from the reader): refused.", failure="no result"
        )
    if not outcome.get("accepted"):
        return SandboxResult(False, str(outcome.get("reason") or "Refused.")[:500])
    return SandboxResult(
        True,
        metadata=outcome["metadata"],
        deidentified=out_dir / DEIDENTIFIED_NAME,
        frames=[out_dir / name for name in outcome["frames"]],
    )


# --- The child ------------------------------------------------------------------------------


def _limit_resources() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_SECONDS, CPU_LIMIT_SECONDS + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT_BYTES, OUTPUT_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def process(raw: Path, out_dir: Path, *, key: bytes, pseudonym: str, max_frames: int) -> dict:
    """Accept or refuse the file at `raw`; on acceptance write the previews and the de-identified
    file into `out_dir`. Returns the JSON-ready outcome."""
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from lesions.dicom import deidentify, preview, reading

    with raw.open("rb") as handle:
        head = handle.read(132)
    if len(head) < 132 or head[128:132] != b"DICM":
        return {"accepted": False, "reason": "Not a DICOM file (no DICOM file header)."}
    try:
        ds = dcmread(raw)
        kind = reading.classify(ds)
        facts = reading.metadata(ds, kind)
    except reading.Refusal as exc:
        return {"accepted": False, "reason": str(exc)}
    except InvalidDicomError:
        return {"accepted": False, "reason": "Not a valid DICOM file."}
    except RecursionError:
        return {"accepted": False, "reason": "Sequences are nested too deeply: refused as hostile."}
    except MemoryError:
        return {
            "accepted": False,
            "reason": "The file declares more data than it is allowed to use: refused.",
        }
    except Exception as exc:  # noqa: BLE001 - any parser failure on untrusted bytes is a refusal
        return {
            "accepted": False,
            "reason": f"The file is damaged or truncated and could not be read ({type(exc).__name__}).",
        }

    frames: list[str] = []
    if kind == "image":
        try:
            for index, png in enumerate(preview.render_frames(ds, raw, max_frames=max_frames), start=1):
                name = f"frame-{index:04d}.png"
                (out_dir / name).write_bytes(png)
                frames.append(name)
        except MemoryError:
            return {
                "accepted": False,
                "reason": "The image is too large to decode within the limits: refused.",
            }
        except Exception as exc:  # noqa: BLE001
            return {
                "accepted": False,
                "reason": f"The image data is damaged or truncated and could not be decoded ({type(exc).__name__}).",
            }
        if not frames:
            return {"accepted": False, "reason": "The image has no frame that could be decoded."}
        if len(frames) < facts["frame_count"]:
            facts.setdefault("warnings", []).append(
                f"Only the first {len(frames)} of {facts['frame_count']} frames are shown."
            )
    try:  # what is printed for the task must be valid JSON for PostgreSQL's jsonb (no NaN)
        json.dumps(facts, allow_nan=False)
    except ValueError:
        return {"accepted": False, "reason": "The file holds numbers that are not finite (NaN or infinity)."}
    try:
        deidentify.deidentify(ds, key=key, pseudonym=pseudonym)
        ds.save_as(out_dir / DEIDENTIFIED_NAME, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001
        return {"accepted": False, "reason": f"The file could not be de-identified ({type(exc).__name__})."}
    return {"accepted": True, "metadata": facts, "frames": frames}


# --- The zygote -----------------------------------------------------------------------------


def _preload() -> None:
    """Import what the child needs, once: the reader, the pixel decoders, the PNG writer."""
    import _strptime  # noqa: F401 - imported by the first strptime (acquisition dates)

    import numpy  # noqa: F401
    import pydicom  # noqa: F401
    import pydicom.pixels  # noqa: F401
    from PIL import Image, PngImagePlugin  # noqa: F401

    from lesions.dicom import deidentify, preview, reading  # noqa: F401

    Image.init()


def _child(request: dict, result_fd: int) -> None:
    """In the forked child: cut it off from the zygote, limit it, judge the file, print."""
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(result_fd, 1)
    os.dup2(devnull, 2)
    os.closerange(3, 1 << 16)  # the zygote's pipes (other than 0-2, now replaced) and the rest
    _limit_resources()
    outcome = process(
        Path(request["raw"]),
        Path(request["out"]),
        key=bytes.fromhex(request["key"]),
        pseudonym=str(request["pseudonym"]),
        max_frames=int(request["max_frames"]),
    )
    data = (json.dumps(outcome) + "\n").encode()
    while data:
        data = data[os.write(1, data) :]


def _fork_and_wait(request: dict) -> dict:
    """Run one child for `request`; how it ended, and what it printed."""
    deadline = time.monotonic() + float(request["timeout"])
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into the zygote's loop
        code = 1
        try:
            os.close(read_end)
            _child(request, write_end)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    output, timed_out, too_much = b"", False, False
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                timed_out = True
                break
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            output += chunk
            if len(output) > RESULT_LIMIT_BYTES:
                too_much = True
                break
    finally:
        os.close(read_end)
    # The child closed its output: it has until the deadline to exit.
    status = None
    while not timed_out and not too_much:
        finished, exit_status = os.waitpid(pid, os.WNOHANG)
        if finished:
            status = exit_status
            break
        if time.monotonic() >= deadline:
            timed_out = True
        else:
            time.sleep(0.002)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        _pid, status = os.waitpid(pid, 0)
    if timed_out:
        return {"ended": "timeout"}
    if too_much:
        return {"ended": "exit", "code": 1}
    if os.WIFSIGNALED(status):
        return {"ended": "signal", "signal": os.WTERMSIG(status)}
    return {"ended": "exit", "code": os.WEXITSTATUS(status), "output": output.decode(errors="replace")}


def zygote_main() -> int:
    """Read one request per line on stdin, answer one report per line on stdout; stop at EOF
    (the worker process that started this one has gone)."""
    _preload()
    out = sys.stdout.buffer
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        try:
            report = _fork_and_wait(json.loads(line))
        except (ValueError, KeyError, TypeError, OSError) as exc:
            report = {"ended": "error", "error": type(exc).__name__}
        out.write(json.dumps(report).encode() + b"\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(zygote_main())
