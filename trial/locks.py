"""Locked data (a visit, a participant or the whole study locked by a data manager) is refused
by PostgreSQL triggers on the clinical tables (trial/data_management/locks_sql.py), whatever
code path writes. This module, in the bottom part so every app may use it, recognises that
refusal and turns it into what people see: a page that says the data are locked (HTTP 409),
or a ValidationError for a service that wants to show it on its form.
"""

from __future__ import annotations

import contextlib

from django.core.exceptions import ValidationError
from django.db import DatabaseError
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

# The SQLSTATE the lock trigger raises: a class of our own ("EL"), not a PostgreSQL one.
LOCKED_SQLSTATE = "EL001"


def is_lock_refusal(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    # psycopg2 names the SQLSTATE `pgcode`, psycopg 3 `sqlstate`.
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return code == LOCKED_SQLSTATE


@contextlib.contextmanager
def lock_refusal_as_validation_error():
    """Inside the block, a write of locked data raises ValidationError instead of a database error."""
    try:
        yield
    except DatabaseError as exc:
        if is_lock_refusal(exc):
            raise ValidationError(
                _("These data are locked by data management and cannot be changed.")
            ) from exc
        raise


class LockedDataMiddleware:
    """A request that tried to write locked data gets a 409 page instead of a server error."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_lock_refusal(exception):
            return TemplateResponse(request, "locked.html", status=409)
        return None
