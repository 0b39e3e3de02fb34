"""Forms of the screening pages: screening record, eligibility checklist, consent, enrolment,
decline, withdrawal of consent and end of study.

Labels, help texts and code lists come from the model fields (`fields_for_model`), so the form and
the data dictionary say the same thing. The forms validate what a person can get wrong while
typing (future dates, contradictory answers); the services enforce the trial's rules, and the
views put a service's refusal back on the form.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django import forms
from django.conf import settings
from django.forms.models import fields_for_model, model_to_dict
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from participants.models import (
    ConsentDocument,
    ConsentRecord,
    ConsentWithdrawal,
    EligibilityAssessment,
    EndReason,
    NonChildbearingReason,
    Participant,
    Screening,
    Sex,
)
from trial.forms import ReasonForChangeMixin
from trial.partial_dates import earliest_date, validate_partial_date
from trial.protocol import PROTOCOL, Criterion

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
NOT_ANSWERED = _("Not answered yet")
# Nullable yes/no answers: radio buttons, with "not answered" so progress can be saved (and a
# wrong click undone) before the question is settled.
YES_NO_UNANSWERED = [("True", _("Yes")), ("False", _("No")), ("", NOT_ANSWERED)]


def _radio_with_unanswered(field: forms.ChoiceField) -> None:
    """Radio buttons for an optional choice: the choices, then 'not answered yet' (value "")."""
    field.choices = [(value, label) for value, label in field.choices if value != ""] + [("", NOT_ANSWERED)]
    field.widget = forms.RadioSelect(choices=field.choices)


def not_in_future(value: dt.date | None, today: dt.date) -> str | None:
    if value is not None and value > today:
        return str(_("This date is in the future."))
    return None


# --- Screening ------------------------------------------------------------------------------

SCREENING_FIELDS = (
    "first_name",
    "last_name",
    "date_of_birth",
    "sex",
    "medical_record_number",
    "screening_date",
)


def validate_screening_dates(cleaned: dict, today: dt.date) -> dict[str, str]:
    """Field errors for the screening record's dates (plain function, testable without HTTP)."""
    errors = {}
    born, screened = cleaned.get("date_of_birth"), cleaned.get("screening_date")
    if error := not_in_future(born, today):
        errors["date_of_birth"] = error
    if error := not_in_future(screened, today):
        errors["screening_date"] = error
    if born and screened and screened <= born and "screening_date" not in errors:
        errors["screening_date"] = str(_("The screening date must be after the date of birth."))
    return errors


class ScreeningForm(forms.Form):
    """A person screened: the identifying data the site needs, and the screening date. With
    `sites` of more than one site, also which site screens them."""

    def __init__(self, *args, today: dt.date, sites=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields.update(
            fields_for_model(
                Screening,
                fields=SCREENING_FIELDS,
                widgets={
                    "date_of_birth": DATE_INPUT,
                    "screening_date": DATE_INPUT,
                    "sex": forms.RadioSelect,
                },
            )
        )
        self.fields["sex"].choices = Sex.choices
        self.fields["first_name"].widget.attrs["autocomplete"] = "off"
        self.fields["last_name"].widget.attrs["autocomplete"] = "off"
        if sites is not None and len(sites) > 1:
            self.fields["site"] = forms.ModelChoiceField(label=_("Site"), queryset=sites, empty_label=None)
            self.order_fields(["site", *SCREENING_FIELDS])

    def clean(self):
        cleaned = super().clean()
        for name, error in validate_screening_dates(cleaned, self.today).items():
            self.add_error(name, error)
        return cleaned


class ScreeningChangeForm(ReasonForChangeMixin, ScreeningForm):
    """Correcting a saved screening record: asks for the reason."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.order_fields([*SCREENING_FIELDS, "reason"])

    def changed_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.changed_data if name in SCREENING_FIELDS}


# --- Eligibility checklist ------------------------------------------------------------------


def has_saved_answers(assessment: EligibilityAssessment) -> bool:
    """Whether any answer of the checklist was saved (then a change needs a reason)."""
    return any(getattr(assessment, name) not in (None, "") for name in EligibilityAssessment.ANSWER_FIELDS)


def validate_pregnancy_section(cleaned: dict, sex: str) -> dict[str, str]:
    """Contradictions in the pregnancy section (EX1), as field errors."""
    errors = {}
    potential = cleaned.get("childbearing_potential")
    reason = cleaned.get("non_childbearing_reason")
    if potential is True and reason:
        errors["non_childbearing_reason"] = str(
            _("Leave this as 'not answered' for a woman of child-bearing potential.")
        )
    elif reason == NonChildbearingReason.MALE and sex != Sex.MALE:
        errors["non_childbearing_reason"] = str(_("The screening record gives the sex at birth as female."))
    elif reason == NonChildbearingReason.OTHER and not cleaned.get("non_childbearing_detail"):
        errors["non_childbearing_detail"] = str(_("Describe the reason."))
    return errors


class EligibilityForm(forms.Form):
    """The eligibility checklist: one section per protocol criterion. Every answer may be left
    unanswered while the coordinator saves progress; the protocol then reports the criterion as
    not answered."""

    def __init__(self, *args, screening: Screening, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.screening = screening
        self.today = today
        answers = fields_for_model(
            EligibilityAssessment,
            fields=EligibilityAssessment.ANSWER_FIELDS,
            widgets={
                "capable_of_consent": forms.RadioSelect(choices=YES_NO_UNANSWERED),
                "calcinosis_evidence": forms.RadioSelect(choices=YES_NO_UNANSWERED),
                "needs_symptomatic_relief": forms.RadioSelect(choices=YES_NO_UNANSWERED),
                "childbearing_potential": forms.RadioSelect(choices=YES_NO_UNANSWERED),
                "calcinosis_evidence_date": DATE_INPUT,
                "pregnancy_test_date": DATE_INPUT,
            },
        )
        for name in (
            "diagnosis",
            "calcinosis_modality",
            "pregnancy_test_type",
            "pregnancy_test_result",
            "non_childbearing_reason",
        ):
            _radio_with_unanswered(answers[name])
        # A partial date is typed: YYYY, YYYY-MM or YYYY-MM-DD (CDASH), never zero-filled.
        diagnosis_date = answers["diagnosis_date"]
        diagnosis_date.validators.append(validate_partial_date)
        diagnosis_date.widget.attrs.update({"inputmode": "numeric", "autocomplete": "off"})
        for field in answers.values():
            field.required = False
        self.fields.update(answers)
        if "reason" in self.fields:
            self.order_fields([*EligibilityAssessment.ANSWER_FIELDS, "reason"])

    def clean(self):
        cleaned = super().clean()
        for name in ("calcinosis_evidence_date", "pregnancy_test_date"):
            if error := not_in_future(cleaned.get(name), self.today):
                self.add_error(name, error)
        if cleaned.get("diagnosis_date"):
            if error := not_in_future(earliest_date(cleaned["diagnosis_date"]), self.today):
                self.add_error("diagnosis_date", error)
        for name, error in validate_pregnancy_section(cleaned, self.screening.sex).items():
            if name not in self.errors:
                self.add_error(name, error)
        return cleaned

    def answers(self) -> dict:
        """The answers as the service takes them ('' for an unanswered choice, None for a date)."""
        return {name: self.cleaned_data.get(name) for name in EligibilityAssessment.ANSWER_FIELDS}

    def valid_answers(self) -> dict:
        """After validation: the answers that passed, the others as unanswered (for the preview)."""
        values = {}
        for name in EligibilityAssessment.ANSWER_FIELDS:
            value = None if name in self.errors else self.cleaned_data.get(name)
            if value is None and isinstance(self.fields[name], forms.CharField | forms.ChoiceField):
                value = ""
            values[name] = value
        return values

    def sections(self) -> list[CriterionSection]:
        """The form's fields grouped by the protocol criterion that reads them, in protocol order.
        A field no criterion names (the description of an 'other' reason) follows the field
        before it."""
        owner: dict[str, Criterion] = {}
        for criterion in PROTOCOL.criteria:
            for name in criterion.fields:
                owner.setdefault(name, criterion)
        previous = None
        for name in EligibilityAssessment.ANSWER_FIELDS:
            if name not in owner and previous is not None:
                owner[name] = owner[previous]
            previous = name
        return [
            CriterionSection(
                criterion=criterion,
                fields=[
                    self[name] for name in EligibilityAssessment.ANSWER_FIELDS if owner.get(name) is criterion
                ],
            )
            for criterion in PROTOCOL.criteria
        ]


@dataclass(frozen=True)
class CriterionSection:
    """One criterion of the checklist form: the protocol's wording and the fields it reads."""

    criterion: Criterion
    fields: list

    @property
    def reads_date_of_birth(self) -> bool:
        return "date_of_birth" in self.criterion.fields


class EligibilityChangeForm(ReasonForChangeMixin, EligibilityForm):
    """The checklist once answers were saved: a change needs a reason (audit trail)."""


# --- Consent --------------------------------------------------------------------------------


class SiteDateTimeField(forms.DateTimeField):
    """A date and time typed as the site's wall-clock time (an `<input type="datetime-local">`),
    whatever zone the page is otherwise shown in; shown back in the same zone."""

    input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]

    def __init__(self, *, zone: zoneinfo.ZoneInfo, **kwargs):
        self.zone = zone
        kwargs.setdefault(
            "widget", forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
        )
        super().__init__(**kwargs)

    def prepare_value(self, value):
        if isinstance(value, dt.datetime) and timezone.is_aware(value):
            return timezone.make_naive(value, self.zone)
        return value

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, dt.datetime):
            naive = timezone.make_naive(value, self.zone) if timezone.is_aware(value) else value
        else:
            naive = None
            for fmt in self.input_formats:
                try:
                    naive = dt.datetime.strptime(str(value).strip(), fmt)
                    break
                except ValueError:
                    continue
            if naive is None:
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        aware = naive.replace(tzinfo=self.zone)
        # A wall-clock time skipped or repeated by a daylight-saving change is not one instant.
        roundtrip = aware.astimezone(dt.UTC).astimezone(self.zone).replace(tzinfo=None)
        other_fold = naive.replace(fold=1, tzinfo=self.zone).utcoffset()
        if roundtrip != naive or other_fold != aware.utcoffset():
            raise forms.ValidationError(
                _("%(time)s does not exist or is ambiguous in %(zone)s (a daylight-saving change)."),
                params={"time": naive.strftime("%Y-%m-%d %H:%M"), "zone": self.zone.key},
                code="ambiguous_timezone",
            )
        return aware


class ConsentDocumentChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: ConsentDocument) -> str:
        return str(
            _("Version %(version)s (%(language)s): %(title)s, in force from %(date)s")
            % {
                "version": obj.version,
                "language": obj.get_language_display(),
                "title": obj.title,
                "date": obj.effective_from.isoformat(),
            }
        )


class ConsentForm(forms.Form):
    """A signed consent (or re-consent). The person obtaining consent is the signed-in user."""

    def __init__(self, *args, zone: zoneinfo.ZoneInfo, documents, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["document"] = ConsentDocumentChoiceField(
            label=_("Consent form version"),
            queryset=documents,
            empty_label=None,
            help_text=_("Only versions in force today are listed."),
        )
        self.fields["consented_at"] = SiteDateTimeField(
            zone=zone,
            label=_("Date and time of consent"),
            help_text=_("Local time at the site (%(zone)s).") % {"zone": zone.key},
        )
        self.fields.update(
            fields_for_model(
                ConsentRecord,
                fields=[
                    "participant_signature",
                    "attestation",
                    "representative_name",
                    "representative_relationship",
                    "witness_name",
                    "copy_given",
                ],
            )
        )
        self.fields["participant_signature"].widget.attrs["autocomplete"] = "off"
        attestation = self.fields["attestation"]
        attestation.required = True
        attestation.error_messages["required"] = _("The participant must confirm the attestation to consent.")
        self.fields["representative_name"].help_text = _(
            "Only if a legally authorised representative consents on the participant's behalf."
        )
        self.fields["witness_name"].help_text = _("Optional.")

    def clean(self):
        cleaned = super().clean()
        if (cleaned.get("representative_name") or "").strip() and not (
            cleaned.get("representative_relationship") or ""
        ).strip():
            self.add_error("representative_relationship", _("Give the representative's relationship."))
        return cleaned

    def clean_participant_signature(self) -> str:
        value = self.cleaned_data["participant_signature"].strip()
        if not value:
            raise forms.ValidationError(_("The participant types their full name to sign."))
        return value


# --- Enrolment, decline, withdrawal, end of study -------------------------------------------


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class EnrolmentForm(forms.Form):
    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields.update(
            fields_for_model(
                Participant,
                fields=["enrolled_on", "email", "preferred_language", "time_zone"],
                widgets={"enrolled_on": DATE_INPUT},
            )
        )
        self.fields["email"].help_text = _("Questionnaires are sent to this address.")
        self.fields["email"].widget.attrs["autocomplete"] = "off"
        self.fields["preferred_language"].choices = settings.LANGUAGES
        self.fields["time_zone"] = forms.ChoiceField(
            label=_("Participant's time zone"),
            choices=time_zone_choices(),
            help_text=_("Questionnaire e-mails and reminders go out in this zone."),
        )

    def clean_enrolled_on(self):
        value = self.cleaned_data["enrolled_on"]
        if error := not_in_future(value, self.today):
            raise forms.ValidationError(error)
        return value


class DeclineForm(forms.Form):
    note = forms.CharField(
        label=_("Why the person will not be enrolled"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: declined to take part, moved away. Kept in the screening log."),
    )

    def clean_note(self) -> str:
        note = self.cleaned_data["note"].strip()
        if not note:
            raise forms.ValidationError(_("Give the reason."))
        return note


class ConsentWithdrawalForm(forms.Form):
    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields.update(
            fields_for_model(
                ConsentWithdrawal,
                fields=["scope", "withdrawn_on", "reason"],
                widgets={"withdrawn_on": DATE_INPUT, "scope": forms.RadioSelect},
            )
        )
        self.fields["scope"].choices = ConsentWithdrawal._meta.get_field("scope").choices
        self.fields["reason"].widget = forms.Textarea(attrs={"rows": 2})

    def clean_withdrawn_on(self):
        value = self.cleaned_data["withdrawn_on"]
        if error := not_in_future(value, self.today):
            raise forms.ValidationError(error)
        return value


class EndOfStudyForm(forms.Form):
    def __init__(self, *args, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        self.fields.update(
            fields_for_model(
                Participant,
                fields=["ended_on", "end_reason", "end_reason_detail"],
                widgets={"ended_on": DATE_INPUT},
            )
        )
        self.fields["ended_on"].required = True
        self.fields["end_reason"].required = True
        self.fields["end_reason"].choices = [("", "---------"), *EndReason.choices]
        self.fields["end_reason_detail"].widget = forms.Textarea(attrs={"rows": 2})

    def clean_ended_on(self):
        value = self.cleaned_data["ended_on"]
        if error := not_in_future(value, self.today):
            raise forms.ValidationError(error)
        return value


def screening_initial(screening: Screening) -> dict:
    return model_to_dict(screening, fields=SCREENING_FIELDS)


class DeclineUndoForm(forms.Form):
    reason = forms.CharField(
        label=_("Why this person is eligible for enrolment again"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "For example: recorded by mistake, the person changed their mind. Kept in the audit trail."
        ),
    )
