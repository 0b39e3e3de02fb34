"""Work a request leaves until its response has been sent (issue #9).

Some work a request causes need not make the user wait: telling another app, through the broker,
that a visit's data changed (`participants.services._announce`) is best effort already - the
receiving app's periodic sweep does the same work - and publishing it cost a table save ~2 ms of
its ~20 (kombu builds the message and a Redis client for every publish). `after_response(f)`
inside a request runs `f` once the response has been handed to the server, when Django sends
`request_finished` (the WSGI server calls the response's close() after writing it); outside a
request (a Celery task, a management command) it runs `f` at once.

`AfterResponseMiddleware` marks the request. A function that fails is logged, and the others still
run: the response is gone, there is nobody to tell.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextvars import ContextVar

from django.core.signals import request_finished

logger = logging.getLogger(__name__)

# The functions of the request being served (None outside a request). A context variable, so that
# each thread or task of a server has its own.
_pending: ContextVar[list[Callable[[], None]] | None] = ContextVar("after_response", default=None)


def after_response(function: Callable[[], None]) -> None:
    """Run `function` after this request's response is sent, or now outside a request."""
    pending = _pending.get()
    if pending is None:
        function()
    else:
        pending.append(function)


def _run_pending(**_kwargs) -> None:
    pending = _pending.get()
    _pending.set(None)
    for function in pending or ():
        try:
            function()
        except Exception:  # noqa: BLE001 - one failure must not stop the rest; logged
            logger.exception("Work left for after the response failed: %r", function)


# Infrastructure, not business logic: the one way Django tells that a response was sent.
request_finished.connect(_run_pending, dispatch_uid="trial.after_response")


class AfterResponseMiddleware:
    """Collects the request's `after_response` work; `request_finished` runs it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _pending.set([])
        return self.get_response(request)
