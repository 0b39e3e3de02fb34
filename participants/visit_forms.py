"""Forms of the visit and safety pages: complete or miss a visit, add an unscheduled visit, a
pregnancy test, the AE review, the adverse event form and protocol deviations.

Cross-field rules of the adverse event form are plain functions (`adverse_event_problems`) that
`clean()` calls, so they can be tested without HTTP. The services re-check what matters; the forms
only make the message appear next to the field the user must correct.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from participants.models import (
    AdverseEvent,
    AEOutcome,
    DeviationCategory,
    Participant,
    PregnancyTestResult,
    PregnancyTestType,
    SeriousnessCriterion,
    Visit,
)
from participants.models.safety import EXPECTED_LOCAL_TERMS
from trial.forms import ReasonForChangeMixin
from trial.models import Site
from trial.partial_dates import parse_partial_date, validate_partial_date

OTHER_TERM = "other"

# CTCAE v5.0 general grade descriptions (the same words in v6.0).
GRADE_CHOICES = [
    (1, _("Grade 1: mild")),
    (2, _("Grade 2: moderate")),
    (3, _("Grade 3: severe or medically significant")),
    (4, _("Grade 4: life-threatening")),
    (5, _("Grade 5: death related to the event")),
]

YES_NO = [("yes", _("Yes")), ("no", _("No"))]


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs=attrs, format="%Y-%m-%d")


def add_service_error(form: forms.Form, exc: ValidationError) -> None:
    """Put a service's refusal on the form: on the field it names when the form has that field,
    otherwise at the top of the form."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, exc)


# --- Visits -----------------------------------------------------------------------------------


class VisitCompleteForm(forms.Form):
    visit_date = forms.DateField(
        label=_("Visit date"),
        widget=DateInput(),
        help_text=_("The date the participant was seen (the site's local date)."),
    )


class VisitMissForm(forms.Form):
    reason = forms.CharField(
        label=_("Why was the visit missed?"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Recorded in the audit trail with your name and the time."),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Give the reason the visit was missed."))
        return reason


class UnscheduledVisitForm(VisitMissForm):
    visit_date = forms.DateField(label=_("Visit date"), widget=DateInput())
    reason = forms.CharField(
        label=_("Reason for the unscheduled visit"),
        max_length=300,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("For example: new painful lesion, ulceration, suspected infection."),
    )

    field_order = ["visit_date", "reason"]


# --- Safety at a visit ------------------------------------------------------------------------


class PregnancyTestForm(forms.Form):
    test_type = forms.ChoiceField(
        label=_("Test"), choices=PregnancyTestType.choices, widget=forms.RadioSelect
    )
    test_date = forms.DateField(label=_("Test date"), widget=DateInput())
    result = forms.ChoiceField(
        label=_("Result"), choices=PregnancyTestResult.choices, widget=forms.RadioSelect
    )


class AEReviewForm(forms.Form):
    new_events = forms.TypedChoiceField(
        label=_("Any new adverse events since the last visit?"),
        choices=YES_NO,
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
        help_text=_("Ask the participant; 'Yes' opens the adverse event form for this visit."),
    )
    # The version of the saved review the form was opened at; empty when there was none yet.
    row_version = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=1)


class AEReviewChangeForm(AEReviewForm):
    """The review of a visit that already has one: changing the answer needs a reason."""

    reason = forms.CharField(
        label=_("Reason for change"),
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Needed only if you change the saved answer; recorded in the audit trail."),
    )


# --- Adverse events ---------------------------------------------------------------------------


def latest_date(value: str) -> dt.date:
    """The last day a partial date can mean (2026-11 -> 2026-11-30)."""
    year, month, day = parse_partial_date(value)
    if day:
        return dt.date(year, month, day)
    if month:
        return dt.date(year, month, calendar.monthrange(year, month)[1])
    return dt.date(year, 12, 31)


def earliest_date(value: str) -> dt.date:
    year, month, day = parse_partial_date(value)
    return dt.date(year, month or 1, day or 1)


def adverse_event_problems(values: Mapping[str, Any], *, today: dt.date) -> dict[str, str]:
    """What is inconsistent in an adverse event's answers, by field; empty when it is sound.

    Reads only the keys present, so a field that already failed its own validation is skipped."""
    problems: dict[str, str] = {}
    if values.get("term_code") == OTHER_TERM and not (values.get("term_text") or "").strip():
        problems["term_text"] = str(_("Describe the event when you choose 'Other'."))
    serious = values.get("serious")
    criteria = values.get("seriousness_criteria")
    if serious and criteria is not None and not criteria:
        problems["seriousness_criteria"] = str(
            _("A serious event needs at least one seriousness criterion: tick every one that applies.")
        )
    if serious is False and criteria:
        problems["serious"] = str(_("Seriousness criteria are ticked: tick 'Serious' or clear the criteria."))
    # ICH E2A / CTCAE: grade 5 is death, which is serious and fatal.
    if values.get("grade") == 5:
        if values.get("outcome") not in (None, AEOutcome.FATAL):
            problems["outcome"] = str(_("Grade 5 means death: the outcome must be 'Fatal'."))
        if serious is False:
            problems["serious"] = str(_("Grade 5 means death: the event is serious."))
        elif serious and criteria and SeriousnessCriterion.DEATH not in criteria:
            problems.setdefault(
                "seriousness_criteria", str(_("Grade 5 means death: tick 'Results in death'."))
            )
    onset, resolution = values.get("onset_date"), values.get("resolution_date")
    if onset and earliest_date(onset) > today:
        problems["onset_date"] = str(_("The onset date cannot be in the future."))
    if resolution:
        if earliest_date(resolution) > today:
            problems["resolution_date"] = str(_("The resolution date cannot be in the future."))
        elif onset and latest_date(resolution) < earliest_date(onset):
            problems["resolution_date"] = str(_("The event cannot resolve before its onset."))
    return problems


def _term_choices() -> list:
    return [
        ("", _("Choose the event")),
        (_("Expected local events after STS injection"), list(EXPECTED_LOCAL_TERMS)),
        (_("Anything else"), [(OTHER_TERM, _("Other (describe)"))]),
    ]


class VisitChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, visit: Visit) -> str:
        return f"{visit.code}: {visit.name}"


class AdverseEventForm(forms.ModelForm):
    """The adverse event CRF (DOMAIN.md s.6). `today` is the site's date, for the date checks."""

    term_code = forms.ChoiceField(label=_("Event"), choices=_term_choices)
    grade = forms.TypedChoiceField(
        label=_("CTCAE grade"), choices=GRADE_CHOICES, coerce=int, widget=forms.RadioSelect
    )
    seriousness_criteria = forms.MultipleChoiceField(
        label=_("Seriousness criteria"),
        choices=SeriousnessCriterion.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Tick every one that applies (ICH E2A)."),
    )
    onset_date = forms.CharField(
        label=_("Onset date"),
        max_length=10,
        validators=[validate_partial_date],
        help_text=_("YYYY-MM-DD; YYYY-MM or YYYY when the day or month is not known."),
    )
    resolution_date = forms.CharField(
        label=_("Resolution date"),
        max_length=10,
        required=False,
        validators=[validate_partial_date],
        help_text=_("Leave empty while the event is ongoing. YYYY-MM-DD, YYYY-MM or YYYY."),
    )

    class Meta:
        model = AdverseEvent
        fields = [
            "reported_at_visit",
            "term_code",
            "term_text",
            "description",
            "ctcae_version",
            "grade",
            "serious",
            "seriousness_criteria",
            "related_to_sts",
            "related_to_procedure",
            "expected",
            "onset_date",
            "resolution_date",
            "outcome",
            "action_taken",
        ]
        field_classes = {"reported_at_visit": VisitChoiceField}
        widgets = {
            "ctcae_version": forms.RadioSelect,
            "related_to_sts": forms.RadioSelect,
            "related_to_procedure": forms.RadioSelect,
            "description": forms.Textarea(attrs={"rows": 3}),
        }
        help_texts = {
            "serious": _("Serious: tick the criteria below. The site's investigators are e-mailed at once."),
            "expected": _("Expected per the protocol (the local events listed first above are expected)."),
            "term_text": _("Needed when the event is 'Other'."),
        }

    def __init__(self, *args, participant: Participant, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.today = today
        visits = self.fields["reported_at_visit"]
        visits.queryset = Visit.objects.filter(participant=participant).order_by("sequence")
        visits.required = False
        visits.empty_label = _("Not at a visit")
        # The model's choices carry an empty option; a radio group reads better without it.
        for name in ("ctcae_version", "related_to_sts", "related_to_procedure"):
            self.fields[name].choices = [c for c in self.fields[name].choices if c[0] != ""]

    def clean(self):
        cleaned = super().clean()
        for field, message in adverse_event_problems(cleaned, today=self.today).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
        return cleaned

    def service_values(self) -> dict[str, Any]:
        """The answers as `participants.safety.adverse_event_record` takes them."""
        values = {name: self.cleaned_data[name] for name in self._meta.fields}
        values["seriousness_criteria"] = list(values["seriousness_criteria"] or [])
        if values["term_code"] != OTHER_TERM:
            values["term_text"] = ""
        return values


class AdverseEventChangeForm(ReasonForChangeMixin, AdverseEventForm):
    """Follow-up of a saved event: a reason, and the row version the form was opened at."""

    row_version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)


# --- Deviations -------------------------------------------------------------------------------


class ParticipantChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, participant: Participant) -> str:
        return participant.study_id


class DeviationForm(forms.Form):
    site = forms.ModelChoiceField(label=_("Site"), queryset=Site.objects.none())
    participant = ParticipantChoiceField(
        label=_("Participant"),
        queryset=Participant.objects.none(),
        required=False,
        empty_label=_("Not about one participant"),
    )
    occurred_on = forms.DateField(label=_("Date of the deviation"), widget=DateInput())
    category = forms.ChoiceField(label=_("Category"), choices=[("", "---------"), *DeviationCategory.choices])
    description = forms.CharField(
        label=_("What happened"), widget=forms.Textarea(attrs={"rows": 3}), max_length=4000
    )
    corrective_action = forms.CharField(
        label=_("Corrective and preventive action"),
        widget=forms.Textarea(attrs={"rows": 2}),
        max_length=4000,
        required=False,
    )

    def __init__(self, *args, sites, participants, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["site"].queryset = sites
        self.fields["participant"].queryset = participants

    def clean(self):
        cleaned = super().clean()
        site, participant = cleaned.get("site"), cleaned.get("participant")
        if site and participant and participant.site_id != site.pk:
            self.add_error("participant", _("That participant belongs to another site."))
        return cleaned
