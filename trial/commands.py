"""Audit context for management commands: who ran which command, from which machine."""

from __future__ import annotations

import contextlib
import getpass
import socket

import pghistory


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


@contextlib.contextmanager
def command_audit_context(argv: list[str]):
    name = argv[1] if len(argv) > 1 else "help"
    with pghistory.context(
        actor=f"command {name} ({_os_user()}@{socket.gethostname()})",
        command=name,
        user=None,
    ):
        yield
