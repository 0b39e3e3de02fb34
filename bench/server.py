"""gunicorn on 127.0.0.1 for the benchmark and the load test: start, wait until it answers, stop.

Two sync workers with the production configuration (trial.gunicorn_conf), as a small container
would run them; the master and its workers are ours alone (a new process group), so stopping them
never touches anyone else's processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.environment import PROJECT_DIR
from bench.query_count import resident_kb

GUNICORN = Path(sys.executable).with_name("gunicorn")
WORKERS = 2
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 15


class ServerDidNotStart(RuntimeError):
    pass


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def worker_pids(self) -> list[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def worker_peak_rss_kb(self) -> int:
        """The largest peak resident memory (VmHWM) of the current workers, in KiB."""
        peaks = []
        for pid in self.worker_pids():
            try:
                peaks.append(resident_kb(pid, "VmHWM"))
            except OSError:
                continue
        return max(peaks, default=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_up(server: RunningServer) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if httpx.get(f"{server.base_url}/healthz/web", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    log = server.log_path.read_text(errors="replace")[-3000:] if server.log_path.exists() else ""
    raise ServerDidNotStart(f"gunicorn did not answer /healthz/web within {STARTUP_TIMEOUT_S} s:\n{log}")


def gunicorn_command(port: int, *, workers: int = WORKERS) -> list[str]:
    """The production configuration (trial.gunicorn_conf, as the Procfile and the image use it) on
    a loopback port."""
    return [
        str(GUNICORN),
        "trial.wsgi",
        "--config=python:trial.gunicorn_conf",
        f"--bind=127.0.0.1:{port}",
        f"--workers={workers}",
        # Long exports and PDFs are not served here; a stuck request should show as an error.
        "--timeout=120",
        "--graceful-timeout=5",
    ]


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, *, workers: int = WORKERS) -> Iterator[RunningServer]:
    """Serve trial.wsgi with `env` (see bench.environment) until the block ends."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv: the venv's gunicorn
            gunicorn_command(port, workers=workers),
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_up(server)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
