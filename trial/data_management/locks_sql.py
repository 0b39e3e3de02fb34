"""The lock guard in PostgreSQL: a BEFORE row trigger on each clinical table refuses INSERT,
UPDATE and DELETE of a row whose visit or participant is locked, or any while the study is
locked. In the database rather than in the services so that no code path can skip it: admin,
`QuerySet.update()`, `bulk_create()`, raw SQL, a future service that forgets a check. (Services
check first with trial.locks.require_unlocked, so people read a message instead of a refusal.)

Each trigger passes the columns that lead from the row to its visit and participant, '' when it
has none: (visit, participant, screening, invitation, response). A row with only a visit finds
its participant through participants_visit; a screening, eligibility or consent row through
the participant enrolled from that screening (none before enrolment: then only a study lock
covers it); a questionnaire response through its invitation, a score through its response.
"""

from __future__ import annotations

# The trigger function and the triggers are created by migrations/0004_lock_triggers.py and
# 0005_lock_screening_consent_questionnaires.py, which raise trial.locks.LOCKED_SQLSTATE.
FUNCTION = "edc_refuse_locked"
TRIGGER = "edc_lock_guard"

# table -> trigger arguments. A test checks every clinical table with a visit, participant,
# screening or questionnaire response is here, so a new form cannot be left out silently.
LOCKED_TABLES: dict[str, tuple[str, ...]] = {
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
    "participants_screening": ("", "", "id"),
    "participants_eligibilityassessment": ("", "", "screening_id"),
    "participants_consentrecord": ("", "", "screening_id"),
    "participants_consentwithdrawal": ("", "", "screening_id"),
    "pro_measures_response": ("", "", "", "invitation_id"),
    "pro_measures_score": ("", "", "", "", "response_id"),
}
