"""Forms of the coordinators' questionnaire pages: filtering the site-wide list, revoking an
invitation, and entering a paper questionnaire (the instrument rendered as one staff form)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from pro_measures.instruments import INSTRUMENTS, Instrument, Item, ItemKind, Section
from pro_measures.models import Invitation, InvitationStatus

OPEN = "open"  # every invitation the patient can still answer (scheduled, sent, opened, in progress)


class InvitationFilterForm(forms.Form):
    """The site-wide list's filters (GET). An unknown value is an error on the form, never a 500."""

    state = forms.ChoiceField(
        label=gettext_lazy("State"),
        required=False,
        choices=[
            ("", gettext_lazy("Any state")),
            (OPEN, gettext_lazy("Open (not yet completed, still in its window)")),
            *InvitationStatus.choices,
        ],
    )
    questionnaire = forms.ChoiceField(
        label=gettext_lazy("Questionnaire"),
        required=False,
        choices=[("", gettext_lazy("Any questionnaire"))]
        + [(code, definition.title) for code, definition in INSTRUMENTS.items()],
    )


class RevokeForm(forms.Form):
    reason = forms.CharField(
        label=gettext_lazy("Why is this questionnaire revoked?"),
        max_length=300,
        help_text=gettext_lazy(
            "Recorded in the audit trail. Every link the patient received stops working and no "
            "further reminder is sent."
        ),
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Give a reason for revoking the questionnaire."))
        return reason


YES_NO = [("yes", gettext_lazy("Yes")), ("no", gettext_lazy("No"))]


def _yes_no(value: str) -> bool:
    return value == "yes"


def item_field(item: Item, *, required: bool | None = None) -> forms.Field:
    """The staff form field of one questionnaire item, with the values the instrument allows.
    `required` overrides the item's own rule (a paper form may carry a blank answer)."""
    label = str(item.text)
    required = item.required if required is None else required
    if item.kind == ItemKind.CHOICE:
        return forms.TypedChoiceField(
            label=label,
            required=required,
            choices=[(option.value, f"{option.value}: {option.label}") for option in item.options],
            coerce=int,
            empty_value=None,
            widget=forms.RadioSelect,
        )
    if item.kind == ItemKind.BOOLEAN:
        return forms.TypedChoiceField(
            label=label,
            required=required,
            choices=YES_NO,
            coerce=_yes_no,
            empty_value=None,
            widget=forms.RadioSelect,
            help_text=_("Leave empty if the patient did not answer."),
        )
    if item.kind == ItemKind.NUMERIC_SCALE:
        choices = []
        for value in range(item.minimum, item.maximum + 1):
            anchor = (
                item.low_anchor
                if value == item.minimum
                else item.high_anchor
                if value == item.maximum
                else ""
            )
            choices.append((value, f"{value} ({anchor})" if anchor else str(value)))
        return forms.TypedChoiceField(
            label=label,
            required=required,
            choices=choices,
            coerce=int,
            empty_value=None,
            widget=forms.RadioSelect,
        )
    # A visual analogue scale: the mark measured with a ruler from the line's left end.
    return forms.IntegerField(
        label=label,
        required=required,
        min_value=item.minimum,
        max_value=item.maximum,
        help_text=_(
            "Millimetres from the left end of the %(length)s mm line to the patient's mark "
            "(%(minimum)s = %(low)s, %(maximum)s = %(high)s)."
        )
        % {
            "length": item.maximum,
            "minimum": item.minimum,
            "low": item.low_anchor,
            "maximum": item.maximum,
            "high": item.high_anchor,
        },
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )


class PaperResponseForm(forms.Form):
    """A paper questionnaire entered by staff: every item of the instrument on one page (sections
    as fieldsets) and the date the patient filled it in. Answers use the instrument's own values,
    so `cleaned_answers()` goes straight to `response_enter_paper`."""

    completed_on = forms.DateField(
        label=gettext_lazy("Date the patient completed the paper form"),
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    blanks_confirmed = forms.BooleanField(
        label=gettext_lazy("The questions I left empty were left blank by the patient on the paper form"),
        required=False,
        help_text=gettext_lazy(
            "A blank answer is stored as not answered; scores that need it are then not scorable."
        ),
    )

    def __init__(self, *args, invitation: Invitation, today: dt.date, **kwargs):
        super().__init__(*args, **kwargs)
        self.invitation = invitation
        self.today = today
        self.definition: Instrument = INSTRUMENTS[invitation.instrument_code]
        for item in self.definition.items:
            if item.link_id in self.fields:  # pragma: no cover - a definition error
                raise ValueError(f"item {item.link_id!r} clashes with a form field")
            # A patient may leave a question blank on paper: the form must be able to say so.
            self.fields[item.link_id] = item_field(item, required=False)

    def sections(self) -> list[tuple[Section, list[forms.BoundField]]]:
        return [
            (section, [self[item.link_id] for item in section.items]) for section in self.definition.sections
        ]

    def clean_completed_on(self) -> dt.date:
        day = self.cleaned_data["completed_on"]
        if day > self.today:
            raise forms.ValidationError(_("The date cannot be in the future."))
        opens = self.invitation.visit.window_opens
        if day < opens:
            raise forms.ValidationError(
                _("The visit window opened on %(date)s: a form for this visit cannot be older.")
                % {"date": opens.isoformat()}
            )
        return day

    def blank_required_items(self) -> list[Item]:
        return [
            item
            for item in self.definition.items
            if item.required
            and self.cleaned_data.get(item.link_id) is None
            and item.link_id not in self.errors
        ]

    def clean(self):
        cleaned = super().clean()
        blank = self.blank_required_items()
        if blank and not cleaned.get("blanks_confirmed"):
            for item in blank:
                self.add_error(item.link_id, _("No answer entered."))
            raise forms.ValidationError(
                ngettext(
                    "%(count)d question has no answer. Enter it, or tick the box below if the patient "
                    "left it blank on the paper form.",
                    "%(count)d questions have no answer. Enter them, or tick the box below if the "
                    "patient left them blank on the paper form.",
                    len(blank),
                )
                % {"count": len(blank)}
            )
        return cleaned

    def cleaned_answers(self) -> dict[str, Any]:
        return {
            item.link_id: self.cleaned_data[item.link_id]
            for item in self.definition.items
            if self.cleaned_data.get(item.link_id) is not None
        }
