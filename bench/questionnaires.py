"""Patients' questionnaire links for the benchmark and the load test, and what a patient posts.

A link's token is stored only as its SHA-256, so a simulated patient needs a link made for it
(`pro_measures.invitations.link_create`, the function the e-mails use).
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from participants.models import Participant, ParticipantStatus, Visit
from pro_measures.instruments import INSTRUMENTS, Instrument, ItemKind, Section
from pro_measures.invitations import link_create
from pro_measures.models import Invitation
from pro_measures.patient_forms import NO, YES
from trial.audit import audit_context

BENCH_INSTRUMENT = "pain_nrs"


def page_post(section: Section, variant: int) -> dict[str, str]:
    """What the patient's browser posts for one page: every item answered, the answer chosen by
    `variant` (so consecutive posts change what is saved)."""
    data = {"section": section.code}
    for item in section.items:
        if item.kind == ItemKind.BOOLEAN:
            data[item.link_id] = YES if variant % 2 else NO
        elif item.kind == ItemKind.CHOICE:
            data[item.link_id] = str(item.options[variant % len(item.options)].value)
        else:
            data[item.link_id] = str(item.minimum + variant % (item.maximum - item.minimum + 1))
    return data


def answerable_invitation(
    *, participant: Participant | None = None, code: str = BENCH_INSTRUMENT
) -> Invitation:
    """An invitation open now: an existing one, or one opened now at a visit of an on-study
    participant that has no invitation for `code` yet."""
    open_now = Invitation.objects.answerable().filter(instrument_code=code)
    if participant is not None:
        open_now = open_now.filter(participant=participant)
    invitation = open_now.order_by("pk").first()
    if invitation is not None:
        return invitation
    participants = Participant.objects.filter(status=ParticipantStatus.ON_STUDY)
    if participant is not None:
        participants = participants.filter(pk=participant.pk)
    visit = (
        Visit.objects.filter(participant__in=participants)
        .exclude(invitations__instrument_code=code)
        .order_by("participant_id", "sequence")
        .first()
    )
    if visit is None:
        raise LookupError(f"no on-study participant's visit can take a {code} invitation")
    now = timezone.now()
    definition: Instrument = INSTRUMENTS[code]
    with audit_context(reason="benchmark questionnaire link"):
        return Invitation.objects.create(
            participant_id=visit.participant_id,
            visit=visit,
            instrument_code=code,
            instrument_version=definition.version,
            opens_at=now - dt.timedelta(hours=1),
            valid_until=now + dt.timedelta(days=7),
        )


def patient_link(invitation: Invitation) -> str:
    """A new link token for the invitation, as an e-mail would carry it."""
    return link_create(invitation)
