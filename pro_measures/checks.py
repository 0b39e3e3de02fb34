"""Start-up check: every instrument the protocol schedules exists, and definitions are sound."""

from django.core import checks


@checks.register()
def instruments_are_consistent(app_configs=None, **kwargs):
    from pro_measures.instruments import INSTRUMENTS
    from trial.protocol import PROTOCOL

    errors = []
    for visit in PROTOCOL.schedule:
        for code in visit.instruments:
            if code not in INSTRUMENTS:
                errors.append(
                    checks.Error(
                        f"Visit {visit.code} schedules unknown instrument {code}.", id="pro_measures.E001"
                    )
                )
    for code, instrument in INSTRUMENTS.items():
        link_ids = [item.link_id for item in instrument.items]
        if len(link_ids) != len(set(link_ids)):
            errors.append(checks.Error(f"Instrument {code} repeats an item link id.", id="pro_measures.E002"))
        if code != instrument.code:
            errors.append(
                checks.Error(f"Instrument registered as {code} is {instrument.code}.", id="pro_measures.E003")
            )
    return errors


@checks.register()
def visit_page_counts_completed_questionnaires(app_configs=None, **kwargs):
    """The visit page (participants, below this app) counts completed invitations by value."""
    from participants.visit_views import QUESTIONNAIRE_COMPLETED
    from pro_measures.models import InvitationStatus

    if QUESTIONNAIRE_COMPLETED != InvitationStatus.COMPLETED:
        return [
            checks.Error(
                "participants.visit_views.QUESTIONNAIRE_COMPLETED is not InvitationStatus.COMPLETED.",
                id="pro_measures.E004",
            )
        ]
    return []
