"""Optimistic locking: the second of two people saving the same record is told, never overwritten.

A record carries `row_version`. An edit form sends back the version it was opened at; the
service saves only if the row still has that version (one UPDATE ... WHERE row_version = n) and
bumps it. Otherwise it raises `EditConflict` and the form shows the message with the user's input
kept, so they can compare and save again.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

CONFLICT_MESSAGE = _(
    "Someone else saved this record after you opened it. Your entries are kept below: "
    "check the current values, then save again."
)


class EditConflict(ValidationError):
    def __init__(self):
        super().__init__(CONFLICT_MESSAGE, code="edit_conflict")


def row_version_field() -> models.PositiveIntegerField:
    return models.PositiveIntegerField(_("row version"), default=1, editable=False)


def save_if_unchanged(instance: models.Model, *, expected_version: int, fields: list[str]) -> None:
    """Write `fields` of `instance` only if its row still has `expected_version`; bump the version."""
    model = type(instance)
    values = {name: getattr(instance, name) for name in fields}
    updated = model._base_manager.filter(pk=instance.pk, row_version=expected_version).update(
        row_version=models.F("row_version") + 1, **values
    )
    if updated != 1:
        raise EditConflict()
    instance.row_version = expected_version + 1
