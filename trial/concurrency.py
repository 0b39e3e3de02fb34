"""Optimistic locking: the second of two people saving the same record is told, never overwritten.

A record carries `row_version`. An edit form sends back the version it was opened at; the
service saves only if the row still has that version (one UPDATE ... WHERE row_version = n) and
bumps it. Otherwise it raises `EditConflict` and the form shows the message with the user's input
kept, so they can compare and save again.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.http import QueryDict
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


def with_current_version(data: QueryDict, version: int, field: str = "row_version") -> QueryDict:
    """The user's posted input with the record's version as it is now: after a conflict the page
    keeps what they typed, and saving again (after seeing the current values) is their choice."""
    data = data.copy()
    data[field] = str(version)
    return data


def _flat_choices(choices) -> dict:
    flat = {}
    for key, label in choices:
        if isinstance(label, (list, tuple)):
            flat.update(_flat_choices(label))
        else:
            flat[key] = label
    return flat


def shown(form, name: str, value: Any) -> str:
    """A value as the form offers it, for the 'someone else saved' comparison."""
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(form, name, v) for v in value) or "—"
    if isinstance(value, models.Model):
        return str(getattr(value, "code", None) or value)
    if isinstance(value, bool):
        return str(_("Yes") if value else _("No"))
    if value in (None, ""):
        return "—"
    choices = getattr(form.fields[name], "choices", None)
    if choices is not None:
        return str(_flat_choices(choices).get(value, value))
    return str(value)


def conflict_rows(form, *, saved: models.Model, yours: dict, names) -> list[dict[str, str]]:
    """The fields where what is saved now differs from the user's entry, for the conflict table
    (templates/trial/conflicts_table.html)."""
    rows = []
    for name in names:
        now, entered = shown(form, name, getattr(saved, name)), shown(form, name, yours.get(name))
        if now != entered:
            rows.append({"label": str(form.fields[name].label), "saved": now, "yours": entered})
    return rows
