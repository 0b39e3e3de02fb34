"""Screening, eligibility, consent and participants (visits and safety follow in issue #4)."""

from participants.models.consent import (
    ConsentDocument,
    ConsentRecord,
    ConsentWithdrawal,
    WithdrawalScope,
)
from participants.models.participant import EndReason, Participant, ParticipantStatus
from participants.models.safety import (
    ActionTaken,
    AdverseEvent,
    AEOutcome,
    AEReview,
    CtcaeVersion,
    DeviationCategory,
    PregnancyTest,
    ProtocolDeviation,
    Relatedness,
    SeriousnessCriterion,
)
from participants.models.screening import (
    CalcinosisModality,
    EligibilityAssessment,
    EligibilityStatus,
    NonChildbearingReason,
    PregnancyTestResult,
    PregnancyTestType,
    Screening,
    ScreeningOutcome,
    Sex,
    SiteSequence,
)
from participants.models.visit import Visit, VisitState, VisitStatus

__all__ = [
    "AEOutcome",
    "AEReview",
    "ActionTaken",
    "AdverseEvent",
    "CtcaeVersion",
    "DeviationCategory",
    "PregnancyTest",
    "ProtocolDeviation",
    "Relatedness",
    "SeriousnessCriterion",
    "CalcinosisModality",
    "ConsentDocument",
    "ConsentRecord",
    "ConsentWithdrawal",
    "EligibilityAssessment",
    "EligibilityStatus",
    "EndReason",
    "NonChildbearingReason",
    "Participant",
    "ParticipantStatus",
    "PregnancyTestResult",
    "PregnancyTestType",
    "Screening",
    "ScreeningOutcome",
    "Sex",
    "SiteSequence",
    "Visit",
    "VisitState",
    "VisitStatus",
    "WithdrawalScope",
]
