"""`{% signature_status record %}`: the e-signature of a record, on the page that shows the record.

A screening shows its eligibility signature; a participant shows the eligibility signature and,
once their time on study has ended, the end-of-study signature. Each line: printed name, meaning,
UTC and site time, the signed content hash's first 16 characters, valid or void, and a link to
review and sign. Like the signing pages, a signature whose records changed is voided (audited)
before it is shown. A few queries per subject, whatever the data size."""

from __future__ import annotations

from dataclasses import dataclass

from django import template
from django.db.models import Model

from participants.models import Participant, ParticipantStatus, Screening
from trial.signatures import services
from trial.signatures.models import Signature, SignatureKind, SignatureStatus, sign_url
from trial.signatures.subjects import subject_kind

register = template.Library()


@dataclass(frozen=True)
class SignatureLine:
    label: str
    latest: Signature | None
    url: str
    can_sign: bool

    @property
    def valid(self) -> bool:
        return self.latest is not None and self.latest.status == SignatureStatus.VALID


def _line(subject: Model, user) -> SignatureLine:
    kind = subject_kind(subject)
    services.signatures_void_if_changed(subject)
    latest = Signature.objects.for_subject(subject).order_by("-signed_at", "-pk").first()
    return SignatureLine(
        label=str(SignatureKind(kind.kind).label),
        latest=latest,
        url=sign_url(subject),
        can_sign=user.has_perm("signatures.sign_visit") and kind.refusal(subject) is None,
    )


@register.inclusion_tag("signatures/_signature_status.html", takes_context=True)
def signature_status(context, record: Screening | Participant):
    user = context["request"].user
    if isinstance(record, Participant):
        subjects: list[Model] = [record.screening]
        if record.status != ParticipantStatus.ON_STUDY:
            subjects.append(record)
    else:
        subjects = [record]
    return {"lines": [_line(subject, user) for subject in subjects], "site_zone": record.site.time_zone}
