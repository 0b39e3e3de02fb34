"""Workflows of screening, eligibility, consent and enrolment.

Keyword-only, atomic, audited: each sets the acting user and the reason in the audit context.
Views, commands and tasks call these; the database re-checks what matters most (the enrolment
guard trigger, check constraints), so no code path can skip a rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import (
    ConsentDocument,
    ConsentRecord,
    ConsentWithdrawal,
    EligibilityAssessment,
    EligibilityStatus,
    EndReason,
    Participant,
    ParticipantStatus,
    Screening,
    ScreeningOutcome,
    WithdrawalScope,
)
from participants.visits import visits_plan
from trial.access import require_site_permission
from trial.after_response import after_response
from trial.audit import actor_metadata, audit_context, reason_required
from trial.locks import require_unlocked
from trial.models import Site, User

SCREENING_EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "medical_record_number",
    "screening_date",
)
PDF_MAGIC = b"%PDF-"
logger = logging.getLogger(__name__)


def _announce(task_name: str, *args: Any) -> None:
    """Tell another app after commit, by task name: participants never imports pro_measures. In a
    request, after its response is sent (`trial.after_response`): the user does not wait for it.

    Best effort: the receiving app's hourly sweep does the same work, so an unreachable broker
    delays it but never fails the user's request (the data is already committed)."""
    from trial.celery import app

    def send() -> None:
        try:
            # Tasks modules are imported on the first announcement a process makes, not at every
            # start-up (a management command would load WeasyPrint for nothing); gunicorn's master
            # imports them once for its workers (trial.gunicorn_conf).
            if task_name not in app.tasks:
                app.loader.import_default_modules()
            # A signature by name, not app.send_task: it resolves to the registered task, so it
            # honours task_always_eager like .delay() does (send_task would always go to the
            # broker), and falls back to sending by name if no app defines it here.
            # ignore_result: nobody waits for an announcement's outcome, so the Redis result
            # backend neither subscribes this process to the task's result channel (a SUBSCRIBE
            # and an UNSUBSCRIBE on every save) nor has the worker store a result.
            app.signature(task_name, args=list(args)).apply_async(retry=False, ignore_result=True)
        except Exception:  # noqa: BLE001 - any broker failure; logged, the sweep catches up
            logger.warning(
                "Could not enqueue %s%r; the periodic sweep will do it.", task_name, args, exc_info=True
            )

    # After the response: the user does not wait for the broker (trial.after_response).
    transaction.on_commit(lambda: after_response(send))


def _require(actor: User | None, permission: str) -> None:
    """For study-wide records (consent documents) that belong to no site."""
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied


def _next_number(site: Site, name: str) -> int:
    """The next number of a per-site sequence; concurrency-safe and never reused (the counter only
    goes up, even when the transaction that took a number later rolls back - a gap, not a reuse)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO participants_sitesequence (site_id, name, last_value) VALUES (%s, %s, 1)
            ON CONFLICT (site_id, name) DO UPDATE SET last_value = participants_sitesequence.last_value + 1
            RETURNING last_value
            """,
            [site.pk, name],
        )
        return cursor.fetchone()[0]


def _outcome_for(assessment: EligibilityAssessment) -> str:
    return {
        EligibilityStatus.INCOMPLETE: ScreeningOutcome.IN_SCREENING,
        EligibilityStatus.ELIGIBLE: ScreeningOutcome.ELIGIBLE,
        EligibilityStatus.NOT_ELIGIBLE: ScreeningOutcome.SCREEN_FAILURE,
    }[assessment.status]


def _refresh_eligibility(assessment: EligibilityAssessment, *, answers_changed: bool) -> None:
    """Recompute the result; any change of what was confirmed voids the confirmation."""
    assessment.refresh_result()
    if answers_changed or assessment.status != EligibilityStatus.ELIGIBLE:
        assessment.confirmed_by = None
        assessment.confirmed_at = None
    assessment.full_clean()
    assessment.save()
    screening = assessment.screening
    if screening.outcome not in (ScreeningOutcome.ENROLLED, ScreeningOutcome.DECLINED):
        outcome = _outcome_for(assessment)
        if screening.outcome != outcome:
            screening.outcome = outcome
            screening.save(update_fields=["outcome"])


@transaction.atomic
def screening_create(
    *,
    actor: User | None,
    site: Site,
    first_name: str,
    last_name: str,
    date_of_birth: dt.date,
    sex: str,
    screening_date: dt.date,
    medical_record_number: str = "",
) -> Screening:
    """Record a person screened at a site; gives them a screening number and an empty checklist."""
    require_site_permission(actor, "participants.add_screening", site)
    require_unlocked()  # only a study lock covers a person not yet enrolled
    screening = Screening(
        site=site,
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        date_of_birth=date_of_birth,
        sex=sex,
        medical_record_number=medical_record_number.strip(),
        screening_date=screening_date,
    )
    screening.full_clean(exclude=["screening_number"])
    if screening_date <= date_of_birth:
        raise ValidationError({"screening_date": _("The screening date must be after the date of birth.")})
    with audit_context(reason="screening recorded", **actor_metadata(actor)):
        screening.screening_number = f"{site.code}-S{_next_number(site, 'screening'):03d}"
        screening.save()
        assessment = EligibilityAssessment(screening=screening)
        _refresh_eligibility(assessment, answers_changed=False)
    return screening


@transaction.atomic
def screening_update(
    *, actor: User | None, screening: Screening, data: dict[str, Any], reason: str
) -> Screening:
    """Correct the screening record (a saved record: needs a reason). Eligibility is re-assessed,
    since age depends on the dates."""
    require_site_permission(actor, "participants.change_screening", screening.site)
    require_unlocked(screening=screening)
    reason = reason_required(reason)
    unknown = set(data) - set(SCREENING_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(_("Not editable: %(fields)s") % {"fields": ", ".join(sorted(unknown))})
    locked = Screening.objects.select_for_update().get(pk=screening.pk)
    for name, value in data.items():
        setattr(locked, name, value)
    locked.full_clean()
    if locked.screening_date <= locked.date_of_birth:
        raise ValidationError({"screening_date": _("The screening date must be after the date of birth.")})
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.save()
        assessment = EligibilityAssessment.objects.select_for_update().get(screening=locked)
        assessment.screening = locked
        dates_changed = bool({"date_of_birth", "screening_date", "sex"} & set(data))
        _refresh_eligibility(assessment, answers_changed=dates_changed)
    return locked


def _has_answers(assessment: EligibilityAssessment) -> bool:
    return any(getattr(assessment, name) not in (None, "") for name in EligibilityAssessment.ANSWER_FIELDS)


@transaction.atomic
def eligibility_record(
    *, actor: User | None, screening: Screening, answers: dict[str, Any], reason: str | None = None
) -> EligibilityAssessment:
    """Save the eligibility checklist. The first entry needs no reason; changing saved answers does."""
    require_site_permission(actor, "participants.change_eligibilityassessment", screening.site)
    require_unlocked(screening=screening)
    unknown = set(answers) - set(EligibilityAssessment.ANSWER_FIELDS)
    if unknown:
        raise ValidationError(
            _("Not part of the checklist: %(fields)s") % {"fields": ", ".join(sorted(unknown))}
        )
    if screening.outcome == ScreeningOutcome.ENROLLED:
        raise ValidationError(_("This person is enrolled; their eligibility can no longer change."))
    assessment = (
        EligibilityAssessment.objects.select_for_update().select_related("screening").get(screening=screening)
    )
    changed = [name for name, value in answers.items() if getattr(assessment, name) != value]
    if not changed:
        return assessment
    was_saved = _has_answers(assessment)
    reason = (
        reason_required(reason) if was_saved else (reason or "").strip() or "eligibility checklist entered"
    )
    for name in changed:
        setattr(assessment, name, answers[name])
    with audit_context(reason=reason, **actor_metadata(actor)):
        _refresh_eligibility(assessment, answers_changed=True)
    return assessment


@transaction.atomic
def eligibility_confirm(*, actor: User, screening: Screening) -> EligibilityAssessment:
    """The investigator confirms the computed eligibility; recorded with their name and the time."""
    require_site_permission(actor, "participants.confirm_eligibility", screening.site)
    require_unlocked(screening=screening)
    assessment = (
        EligibilityAssessment.objects.select_for_update().select_related("screening").get(screening=screening)
    )
    assessment.refresh_result()
    if assessment.status != EligibilityStatus.ELIGIBLE:
        raise ValidationError(_("Only a complete checklist that meets every criterion can be confirmed."))
    if assessment.is_confirmed:
        return assessment
    assessment.confirmed_by = actor
    assessment.confirmed_at = timezone.now()
    with audit_context(reason="eligibility confirmed by investigator", **actor_metadata(actor)):
        assessment.save()
    return assessment


def _sha256(upload: UploadedFile) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


@transaction.atomic
def consent_document_add(
    *,
    actor: User | None,
    version: str,
    language: str,
    title: str,
    approved_on: dt.date,
    effective_from: dt.date,
    document: UploadedFile,
    effective_until: dt.date | None = None,
) -> ConsentDocument:
    """Add an approved version of the consent form. From its effective date, participants who
    signed an older version of the same language are flagged for re-consent."""
    _require(actor, "participants.manage_consent_documents")
    head = document.read(len(PDF_MAGIC))
    document.seek(0)
    if head != PDF_MAGIC:
        raise ValidationError({"document": _("The consent document must be a PDF file.")})
    doc = ConsentDocument(
        version=version.strip(),
        language=language,
        title=title.strip(),
        approved_on=approved_on,
        effective_from=effective_from,
        effective_until=effective_until,
        document=document,
        sha256=_sha256(document),
    )
    doc.full_clean()
    with audit_context(reason="consent document version added", **actor_metadata(actor)):
        doc.save()
    return doc


def consent_in_force(screening: Screening) -> ConsentRecord | None:
    """The latest consent not withdrawn since it was given."""
    latest = screening.consents.select_related("document").order_by("-consented_at", "-id").first()
    if latest is None:
        return None
    if screening.withdrawals.filter(recorded_at__gte=latest.signature_captured_at).exists():
        return None
    return latest


@transaction.atomic
def consent_record(
    *,
    actor: User,
    screening: Screening,
    document: ConsentDocument,
    consented_at: dt.datetime,
    participant_signature: str,
    attestation: bool,
    copy_given: bool,
    representative_name: str = "",
    representative_relationship: str = "",
    witness_name: str = "",
) -> ConsentRecord:
    """Record a signed consent (initial or re-consent) to a version in force on the consent date."""
    require_site_permission(actor, "participants.add_consentrecord", screening.site)
    require_unlocked(screening=screening)
    if not attestation:
        raise ValidationError({"attestation": _("The participant must confirm the attestation to consent.")})
    if not participant_signature.strip():
        raise ValidationError({"participant_signature": _("The participant types their full name to sign.")})
    if consented_at > timezone.now() + dt.timedelta(minutes=5):
        raise ValidationError({"consented_at": _("The consent time cannot be in the future.")})
    consent_day = timezone.localtime(consented_at, screening.site.zone).date()
    if not ConsentDocument.objects.effective_on(consent_day).filter(pk=document.pk).exists():
        raise ValidationError(
            {"document": _("That version of the consent form is not in force on the consent date.")}
        )
    record = ConsentRecord(
        screening=screening,
        document=document,
        consented_at=consented_at,
        participant_signature=participant_signature.strip(),
        attestation=True,
        obtained_by=actor,
        representative_name=representative_name.strip(),
        representative_relationship=representative_relationship.strip(),
        witness_name=witness_name.strip(),
        copy_given=copy_given,
    )
    record.full_clean()
    with audit_context(reason="consent recorded", **actor_metadata(actor)):
        record.save()
    return record


@transaction.atomic
def consent_withdraw(
    *, actor: User, screening: Screening, withdrawn_on: dt.date, scope: str, reason: str = ""
) -> ConsentWithdrawal:
    """Record a withdrawal of consent. Withdrawals that stop contact also end the participant's
    time on study, so no further visit, questionnaire or reminder goes out (they are all drawn
    from `Participant.objects.contactable()`)."""
    require_site_permission(actor, "participants.add_consentwithdrawal", screening.site)
    require_unlocked(screening=screening)
    if scope not in WithdrawalScope.values:
        raise ValidationError({"scope": _("Choose what the participant withdraws from.")})
    if withdrawn_on > timezone.localdate():
        raise ValidationError({"withdrawn_on": _("The withdrawal date cannot be in the future.")})
    withdrawal = ConsentWithdrawal(
        screening=screening, withdrawn_on=withdrawn_on, scope=scope, reason=reason.strip(), recorded_by=actor
    )
    withdrawal.full_clean()
    with audit_context(reason=reason.strip() or "consent withdrawn", **actor_metadata(actor)):
        withdrawal.save()
        participant = Participant.objects.select_for_update().filter(screening=screening).first()
        if (
            participant
            and scope in ConsentWithdrawal.STOPS_CONTACT
            and participant.status == ParticipantStatus.ON_STUDY
        ):
            participant.status = ParticipantStatus.WITHDRAWN
            participant.ended_on = withdrawn_on
            participant.end_reason = EndReason.WITHDREW_CONSENT
            participant.end_reason_detail = reason.strip()
            participant.save()
        if participant and scope in ConsentWithdrawal.STOPS_CONTACT:
            _announce(
                "pro_measures.tasks.reminders_cancel_for_participant", participant.pk, "consent withdrawn"
            )
    return withdrawal


@transaction.atomic
def participant_enroll(
    *,
    actor: User,
    screening: Screening,
    enrolled_on: dt.date,
    email: str = "",
    preferred_language: str = "en",
    time_zone: str | None = None,
) -> Participant:
    """Enrol an eligible, confirmed, consented person: assigns the study id <site>-<nnn>.

    The database's enrolment guard re-checks eligibility confirmation and consent."""
    require_site_permission(actor, "participants.enroll_participant", screening.site)
    require_unlocked(screening=screening)
    screening = (
        Screening.objects.select_for_update(of=("self",))
        .select_related("site", "eligibility")
        .get(pk=screening.pk)
    )
    if Participant.objects.filter(screening=screening).exists():
        raise ValidationError(_("This person is already enrolled."))
    assessment = screening.eligibility
    assessment.refresh_result()
    if assessment.status != EligibilityStatus.ELIGIBLE:
        raise ValidationError(_("Only an eligible person can be enrolled."))
    if not assessment.is_confirmed:
        raise ValidationError(_("An investigator must confirm eligibility before enrolment."))
    consent = consent_in_force(screening)
    if consent is None:
        raise ValidationError(_("There is no consent in force for this person."))
    current = ConsentDocument.objects.current(language=consent.document.language, on=enrolled_on)
    if current is not None and current.pk != consent.document_id:
        raise ValidationError(
            _("The person consented to version %(old)s; version %(new)s is now in force. Re-consent first.")
            % {"old": consent.document.version, "new": current.version}
        )
    if enrolled_on < screening.screening_date:
        raise ValidationError({"enrolled_on": _("Enrolment cannot be before the screening date.")})
    participant = Participant(
        screening=screening,
        site=screening.site,
        enrolled_on=enrolled_on,
        enrolled_by=actor,
        email=email.strip().lower(),
        preferred_language=preferred_language,
        time_zone=time_zone or screening.site.time_zone,
    )
    participant.full_clean(exclude=["study_id", "screening"])
    with audit_context(reason="participant enrolled", **actor_metadata(actor)):
        participant.study_id = f"{screening.site.code}-{_next_number(screening.site, 'study_id'):03d}"
        participant.save()
        screening.outcome = ScreeningOutcome.ENROLLED
        screening.save(update_fields=["outcome"])
        # The visit schedule starts at enrolment: baseline planned from the enrolment date.
        visits_plan(participant=participant, baseline=enrolled_on)
    _announce("pro_measures.tasks.invitations_plan_for_participant", participant.pk)
    return participant


@transaction.atomic
def screening_decline(*, actor: User, screening: Screening, note: str) -> Screening:
    """An eligible person who will not be enrolled (declined, lost before enrolment)."""
    require_site_permission(actor, "participants.change_screening", screening.site)
    require_unlocked(screening=screening)
    note = reason_required(note)
    if screening.outcome == ScreeningOutcome.ENROLLED:
        raise ValidationError(_("This person is enrolled; end their participation instead."))
    # A screen failure stays a screen failure in the log (CONSORT counts): only an eligible
    # person can be recorded as "eligible, not enrolled".
    if screening.outcome != ScreeningOutcome.ELIGIBLE:
        raise ValidationError(_("Only an eligible person can be recorded as not enrolled."))
    with audit_context(reason=note, **actor_metadata(actor)):
        screening.outcome = ScreeningOutcome.DECLINED
        screening.outcome_note = note
        screening.save(update_fields=["outcome", "outcome_note"])
    return screening


@transaction.atomic
def screening_decline_undo(*, actor: User, screening: Screening, reason: str) -> Screening:
    """Undo "eligible, not enrolled" recorded by mistake or before the person changed their mind:
    eligible again (the confirmed checklist still stands), with the reason in the audit trail."""
    require_site_permission(actor, "participants.change_screening", screening.site)
    require_unlocked(screening=screening)
    reason = reason_required(reason)
    locked = Screening.objects.select_for_update().get(pk=screening.pk)
    if locked.outcome != ScreeningOutcome.DECLINED:
        raise ValidationError(_("Only a person recorded as not enrolled can be made eligible again."))
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.outcome = ScreeningOutcome.ELIGIBLE
        locked.outcome_note = ""
        locked.save(update_fields=["outcome", "outcome_note"])
    return locked


@transaction.atomic
def participant_end(
    *, actor: User, participant: Participant, ended_on: dt.date, end_reason: str, detail: str = ""
) -> Participant:
    """End a participant's time on study: completion, early withdrawal or termination."""
    require_site_permission(actor, "participants.change_participant", participant.site)
    require_unlocked(participant=participant)
    if participant.status != ParticipantStatus.ON_STUDY:
        raise ValidationError(_("This participant's time on study has already ended."))
    if end_reason not in EndReason.values:
        raise ValidationError({"end_reason": _("Choose why the participant's time on study ends.")})
    if ended_on < participant.enrolled_on:
        raise ValidationError({"ended_on": _("The end date cannot be before enrolment.")})
    locked = Participant.objects.select_for_update().get(pk=participant.pk)
    locked.status = (
        ParticipantStatus.COMPLETED if end_reason == EndReason.COMPLETED else ParticipantStatus.WITHDRAWN
    )
    locked.ended_on = ended_on
    locked.end_reason = end_reason
    locked.end_reason_detail = detail.strip()
    locked.full_clean()
    with audit_context(reason=detail.strip() or locked.get_end_reason_display(), **actor_metadata(actor)):
        locked.save()
    _announce("pro_measures.tasks.reminders_cancel_for_participant", locked.pk, "end of study")
    return locked
