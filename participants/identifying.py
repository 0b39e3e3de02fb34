"""Who may see identifying data (names, dates of birth, record numbers, e-mail addresses).

Monitors, data managers and exports see the screening number and study id only. Templates get a
prepared value from `identity_for(...)` and never decide this themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

PERMISSION = "participants.view_identifying_data"
HIDDEN = _("hidden")


def can_see_identifying(user) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.has_perm(PERMISSION))


@dataclass(frozen=True)
class Identity:
    """What a page may show about a screened person to the current user."""

    visible: bool
    name: str
    date_of_birth: str
    medical_record_number: str


def identity_for(screening, user) -> Identity:
    if not can_see_identifying(user):
        return Identity(False, str(HIDDEN), str(HIDDEN), str(HIDDEN))
    return Identity(
        True,
        f"{screening.first_name} {screening.last_name}",
        screening.date_of_birth.isoformat(),
        screening.medical_record_number or "—",
    )
