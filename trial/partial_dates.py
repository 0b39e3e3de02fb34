"""Partial dates (CDASH): stored at the precision collected, never zero-filled.

A diagnosis made "in 2019" is stored as "2019", not 2019-01-01. Values are ISO 8601 reduced
precision: YYYY, YYYY-MM or YYYY-MM-DD.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

_PATTERN = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_partial_date(value: str) -> tuple[int, int | None, int | None]:
    match = _PATTERN.match(value.strip())
    if not match:
        raise ValueError(value)
    year, month, day = (int(part) if part else None for part in match.groups())
    dt.date(year, month or 1, day or 1)  # raises ValueError on 2021-02-30 or month 13
    if year < 1900:
        raise ValueError(value)
    return year, month, day


def validate_partial_date(value: str) -> None:
    try:
        parse_partial_date(value)
    except ValueError:
        raise ValidationError(
            _("Enter a date as YYYY, YYYY-MM or YYYY-MM-DD (for example 2019 or 2019-06)."),
            code="invalid_partial_date",
        ) from None


def earliest_date(value: str) -> dt.date:
    """The first day the partial date can mean (for 'not after' comparisons)."""
    year, month, day = parse_partial_date(value)
    return dt.date(year, month or 1, day or 1)


class PartialDateField(models.CharField):
    description = _("Partial date (YYYY, YYYY-MM or YYYY-MM-DD)")
    default_validators = [validate_partial_date]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 10)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("max_length") == 10:
            del kwargs["max_length"]
        return name, path, args, kwargs
