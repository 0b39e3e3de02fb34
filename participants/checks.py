"""Start-up check: the protocol's criteria read answers this app's checklist actually has."""

from django.core import checks


@checks.register()
def criteria_fields_exist(app_configs=None, **kwargs):
    from participants.models import EligibilityAssessment, Screening
    from trial.protocol import PROTOCOL

    known = {f.name for f in EligibilityAssessment._meta.fields} | {f.name for f in Screening._meta.fields}
    return [
        checks.Error(
            f"Criterion {criterion.code} reads {name}, which the eligibility checklist does not have.",
            obj="trial.protocol",
            id="participants.E001",
        )
        for criterion in PROTOCOL.criteria
        for name in criterion.fields
        if name not in known
    ]
