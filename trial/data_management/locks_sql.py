"""The lock guard in PostgreSQL: a BEFORE row trigger on each clinical table refuses INSERT,
UPDATE and DELETE of a row whose visit or participant is locked, or any while the study is
locked. In the database rather than in the services so that no code path can skip it: admin,
`QuerySet.update()`, `bulk_create()`, raw SQL, a future service that forgets a check.

Each trigger passes the row's visit column and participant column ('' when it has none); a row
with only a visit finds its participant through participants_visit.
"""

from __future__ import annotations

# The trigger function and the triggers are created by migrations/0004_lock_triggers.py, which
# raises trial.locks.LOCKED_SQLSTATE.
FUNCTION = "edc_refuse_locked"
TRIGGER = "edc_lock_guard"

# table -> (visit column, participant column). A test checks every clinical table with a visit
# or participant is here, so a new form cannot be left out silently.
LOCKED_TABLES: dict[str, tuple[str, str]] = {
    "participants_participant": ("", "id"),
    "participants_visit": ("id", "participant_id"),
    "participants_pregnancytest": ("visit_id", "participant_id"),
    "participants_adverseevent": ("reported_at_visit_id", "participant_id"),
    "participants_aereview": ("visit_id", ""),
    "participants_protocoldeviation": ("", "participant_id"),
    "lesions_lesion": ("", "participant_id"),
    "lesions_dicomfile": ("visit_id", ""),
    "lesions_ultrasoundmeasurement": ("visit_id", ""),
    "lesions_injection": ("visit_id", ""),
}
