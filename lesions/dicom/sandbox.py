"""Parse an untrusted upload in a separate, resource-limited process.

`run_sandbox()` (called by the Celery task) starts `python -m lesions.dicom.sandbox IN OUT` with
a wall-clock timeout; the child first limits itself (address space, CPU seconds, size of the
files it may write), then reads the file with pydicom, decides whether it is accepted, reads its
facts, renders a PNG per frame and writes the de-identified file. It prints one JSON object on
stdout. A file that makes the child run out of memory, loop, crash or hang costs that child
only: never a web worker, never the Celery worker process.

The child imports neither Django nor the project's settings; it gets its key and pseudonym on
stdin and has no database access.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# Limits of the child (generous for a 50 MB multi-frame clip, small for anything hostile).
MEMORY_LIMIT_BYTES = 1536 * 1024 * 1024
CPU_LIMIT_SECONDS = 30
OUTPUT_LIMIT_BYTES = 512 * 1024 * 1024
WALL_CLOCK_SECONDS = 60
MAX_PREVIEW_FRAMES = 300

DEIDENTIFIED_NAME = "deidentified.dcm"


@dataclass
class SandboxResult:
    accepted: bool
    reason: str = ""
    metadata: dict = field(default_factory=dict)
    deidentified: Path | None = None
    frames: list[Path] = field(default_factory=list)


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
    project_root = Path(__file__).resolve().parents[2]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(project_root),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        # One thread per native library: each thread's arena would count against the limit.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    config = json.dumps({"key": key.hex(), "pseudonym": pseudonym, "max_frames": MAX_PREVIEW_FRAMES})
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv: our interpreter and module, no shell
            [sys.executable, "-W", "ignore", "-m", "lesions.dicom.sandbox", str(raw_path), str(out_dir)],
            input=config.encode(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=project_root,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return SandboxResult(False, f"Reading the file took longer than {int(timeout)} seconds: refused.")
    if completed.returncode != 0:
        if completed.returncode < 0:
            return SandboxResult(
                False,
                "The file could not be read within the memory and time limits (the reader was stopped): refused.",
            )
        return SandboxResult(False, "The file could not be read (the reader failed): refused.")
    try:
        outcome = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return SandboxResult(False, "The file could not be read (no result from the reader): refused.")
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


def main(argv: list[str]) -> int:
    _limit_resources()
    config = json.loads(sys.stdin.read(10_000))
    outcome = process(
        Path(argv[1]),
        Path(argv[2]),
        key=bytes.fromhex(config["key"]),
        pseudonym=str(config["pseudonym"]),
        max_frames=int(config["max_frames"]),
    )
    sys.stdout.write(json.dumps(outcome) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
