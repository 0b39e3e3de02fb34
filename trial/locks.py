"""Locked data (a visit, a participant or the whole study locked by a data manager) is refused
by PostgreSQL triggers on the clinical tables (trial/data_management/locks_sql.py), whatever
code path writes. This module, in the bottom part so every app may use it, is what people see:

- `lock_in_force()` / `require_unlocked()`: the one lock check every service that writes clinical
  data calls before writing, so the user reads "Locked by X on <date>: <reason>" on the form
  instead of a refusal after submitting (the trigger stays the backstop for every other path);
- `ReadOnlyWhenLockedMixin`: an edit page of locked data shows that banner instead of its form;
- `LockedDataMiddleware`: a write that still reaches the trigger gets a 409 page, not a 500.

The lock table belongs to trial.data_management (which imports the domain apps), so it is looked
up by name here, never imported.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.apps import apps
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import DatabaseError
from django.db.models import Exists, Model, OuterRef, Q
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _

# The SQLSTATE the lock trigger raises: a class of our own ("EL"), not a PostgreSQL one.
LOCKED_SQLSTATE = "EL001"


def is_lock_refusal(exc: BaseException) -> bool:
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    # psycopg2 names the SQLSTATE `pgcode`, psycopg 3 `sqlstate`.
    code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    return code == LOCKED_SQLSTATE


def _participant_of(screening: Model | None) -> Model | None:
    if screening is None:
        return None
    try:
        return screening.participant  # the reverse one-to-one; a screening not enrolled has none
    except ObjectDoesNotExist:
        return None


def lock_in_force(
    *, visit: Model | None = None, participant: Model | None = None, screening: Model | None = None
):
    """The active lock that makes these data read-only, or None: a study lock covers everything
    (a screening not enrolled only by it), a participant lock all of the participant's records
    (their screening, eligibility and consent included), a visit lock the visit's records.
    Same rule as the trigger's (edc_refuse_locked)."""
    if participant is None and visit is None:
        participant = _participant_of(screening)
    participant_id = visit.participant_id if visit is not None else getattr(participant, "pk", None)
    return (
        _locks_covering(participant_id=participant_id, visit_id=visit.pk if visit is not None else None)
        .select_related("locked_by", "participant", "visit")
        .order_by("locked_at", "pk")
        .first()
    )


def _locks_covering(*, participant_id=None, visit_id=None):
    """The locks in force over a participant's or a visit's records (ids, or OuterRefs)."""
    condition = Q(scope="study")
    if participant_id is not None:
        condition |= Q(scope="participant", participant_id=participant_id)
    if visit_id is not None:
        condition |= Q(scope="visit", visit_id=visit_id)
    data_lock = apps.get_model("data_management", "DataLock")
    return data_lock.objects.filter(released_at__isnull=True).filter(condition)


def visit_locked() -> Exists:
    """Annotation for a Visit queryset: is a lock in force over the visit (`lock_in_force`'s
    rule)? A page or service that reads the visit anyway learns it in the same statement, and
    asks `lock_in_force` / `require_unlocked` for the lock itself only when there is one."""
    return Exists(_locks_covering(participant_id=OuterRef("participant_id"), visit_id=OuterRef("pk")))


def lock_message(lock) -> str:
    """What the user reads: who locked, when (the site's day: the active time zone), and why."""
    return _(
        "Locked by %(who)s on %(day)s: %(why)s. Nothing can be changed until a data manager unlocks it."
    ) % {
        "who": lock.locked_by,
        "day": timezone.localtime(lock.locked_at).date().isoformat(),
        "why": lock.reason or lock,
    }


def require_unlocked(
    *, visit: Model | None = None, participant: Model | None = None, screening: Model | None = None
) -> None:
    """Raise ValidationError (code "locked") with `lock_message` if these data are locked. Every
    service that writes clinical data calls this first, inside its transaction."""
    lock = lock_in_force(visit=visit, participant=participant, screening=screening)
    if lock is not None:
        raise ValidationError(lock_message(lock), code="locked")


class ReadOnlyWhenLockedMixin:
    """An edit page of locked data: GET and POST answer the banner page (200) instead of the form,
    and nothing is written. Put it after the permission mixin, so a role or site that may not
    see the page still gets its 403/404 first. `lock_scope()` names what the page edits."""

    locked_template_name = "locked.html"

    def lock_scope(self) -> dict[str, Any]:
        """{"visit"|"participant"|"screening": record} the page edits; {}: only a study lock applies."""
        return {}

    def dispatch(self, request, *args, **kwargs):
        lock = lock_in_force(**self.lock_scope()) if request.method in ("GET", "HEAD", "POST") else None
        if lock is None:
            return super().dispatch(request, *args, **kwargs)
        record = next((value for value in self.lock_scope().values() if value is not None), None)
        return TemplateResponse(
            request,
            self.locked_template_name,
            {
                "lock": lock,
                "lock_message": lock_message(lock),
                "back_url": record.get_absolute_url() if hasattr(record, "get_absolute_url") else "",
                "nothing_saved": request.method == "POST",
            },
        )


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
