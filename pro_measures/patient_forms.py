"""The patient's questionnaire, one section per page: a form built from the instrument definition,
and what the templates show for each question (prepared here, so templates only display).

Every field is optional on its page: the patient may go on and come back; the review page names
the required questions still unanswered, and `response_submit` refuses until they are answered.
An empty field clears a saved answer (the page's state is what the patient sees on it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from pro_measures.instruments import Instrument, Item, ItemKind, Section

CHOOSE_ONE = _("Choose one of the answers shown.")
YES, NO = "yes", "no"


def _as_bool(value: str) -> bool:
    return value == YES


def _field_for(item: Item) -> forms.Field:
    if item.kind == ItemKind.VISUAL_ANALOGUE:
        whole_number = _("Enter a whole number from %(minimum)d to %(maximum)d.") % {
            "minimum": item.minimum,
            "maximum": item.maximum,
        }
        return forms.IntegerField(
            label=item.text,
            required=False,
            min_value=item.minimum,
            max_value=item.maximum,
            error_messages={"invalid": whole_number, "min_value": whole_number, "max_value": whole_number},
        )
    if item.kind == ItemKind.BOOLEAN:
        choices = [(YES, _("Yes")), (NO, _("No"))]
        coerce = _as_bool
    elif item.kind == ItemKind.NUMERIC_SCALE:
        choices = [(str(n), str(n)) for n in range(item.minimum, item.maximum + 1)]
        coerce = int
    else:
        choices = [(str(option.value), option.label) for option in item.options]
        coerce = int
    return forms.TypedChoiceField(
        label=item.text,
        required=False,
        choices=choices,
        coerce=coerce,
        empty_value=None,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": CHOOSE_ONE},
    )


def _shown(item: Item, value: Any) -> str:
    """A saved answer as a form value (what the radio or number input carries)."""
    if value is None:
        return ""
    if item.kind == ItemKind.BOOLEAN:
        return YES if value else NO
    return str(value)


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    input_id: str
    checked: bool
    anchor: str = ""  # NRS: the end's words ("No pain") read with its number


@dataclass(frozen=True)
class Question:
    """One question as the page shows it: a fieldset with a legend and its inputs."""

    item: Item
    name: str
    fieldset_id: str
    value: str  # the value shown: what was posted on an error, else the saved answer
    error: str
    choices: tuple[Choice, ...]
    starts_aids_group: bool  # HAQ-DI: the aids/help questions follow the category's items

    @property
    def kind(self) -> str:
        return str(self.item.kind)

    @property
    def error_id(self) -> str:
        return f"{self.fieldset_id}-error"

    @property
    def hint_id(self) -> str:
        return f"{self.fieldset_id}-hint"

    @property
    def described_by(self) -> str:
        """The error, then the scale's ends (NRS, VAS), read with the question."""
        ids = [self.error_id] if self.error else []
        if self.item.kind in (ItemKind.NUMERIC_SCALE, ItemKind.VISUAL_ANALOGUE):
            ids.append(self.hint_id)
        return " ".join(ids)


class SectionForm(forms.Form):
    """One page of the questionnaire: the section's items, and the section it was shown for.

    `section` is a hidden field: a page posted for another section (a second tab, a stale page,
    a tampered field) is refused as a whole, so nothing is saved under the wrong questions.
    """

    section = forms.CharField(widget=forms.HiddenInput, required=False)

    def __init__(self, *args, definition: Instrument, section: Section, saved: dict[str, Any], **kwargs):
        self.definition = definition
        self.section_definition = section
        initial = {item.link_id: _shown(item, saved.get(item.link_id)) for item in section.items}
        initial["section"] = section.code
        super().__init__(*args, initial=initial, auto_id="id_%s", **kwargs)
        for item in section.items:
            self.fields[item.link_id] = _field_for(item)

    def clean_section(self) -> str:
        posted = self.cleaned_data.get("section")
        if posted != self.section_definition.code:
            raise forms.ValidationError(
                _(
                    "This page was out of date, so nothing on it was saved. Your earlier answers "
                    "are kept: check the answers below and press the button again."
                ),
                code="stale_page",
            )
        return posted

    @property
    def page_error(self) -> str:
        """The message for a page posted for another section (shown first, in the alert)."""
        errors = self.errors.get("section")
        return errors[0] if errors else ""

    def answers(self) -> dict[str, Any]:
        """The page's answers for `response_save_answers`: None clears an answer."""
        return {item.link_id: self.cleaned_data.get(item.link_id) for item in self.section_definition.items}

    def questions(self) -> list[Question]:
        questions = []
        seen_other_kind = False
        for item in self.section_definition.items:
            bound = self[item.link_id]
            value = bound.value()
            value = "" if value is None else str(value)
            if self.page_error:
                # The post was for another page: show what is saved, not what was posted.
                value = str(bound.initial or "")
            errors = [] if self.page_error else bound.errors
            fieldset_id = f"q-{item.link_id}"
            choices = ()
            if item.kind != ItemKind.VISUAL_ANALOGUE:
                choices = tuple(
                    Choice(
                        value=str(choice_value),
                        label=str(label),
                        input_id=f"{fieldset_id}-{choice_value}",
                        checked=str(choice_value) == value,
                        anchor=_nrs_anchor(item, choice_value),
                    )
                    for choice_value, label in bound.field.choices
                )
            starts_aids = item.kind == ItemKind.BOOLEAN and seen_other_kind
            questions.append(
                Question(
                    item=item,
                    name=item.link_id,
                    fieldset_id=fieldset_id,
                    value=value,
                    error=errors[0] if errors else "",
                    choices=choices,
                    starts_aids_group=starts_aids,
                )
            )
            seen_other_kind = item.kind != ItemKind.BOOLEAN
        return questions


def _nrs_anchor(item: Item, choice_value: str) -> str:
    if item.kind != ItemKind.NUMERIC_SCALE:
        return ""
    if choice_value == str(item.minimum):
        return str(item.low_anchor)
    if choice_value == str(item.maximum):
        return str(item.high_anchor)
    return ""


def answer_text(item: Item, value: Any) -> str:
    """A saved answer in words, for the review page."""
    if value is None:
        return ""
    if item.kind == ItemKind.BOOLEAN:
        return gettext("Yes") if value else gettext("No")
    if item.kind == ItemKind.CHOICE:
        return next((str(option.label) for option in item.options if option.value == value), str(value))
    return gettext("%(value)s (from %(minimum)s, %(low)s, to %(maximum)s, %(high)s)") % {
        "value": value,
        "minimum": item.minimum,
        "low": item.low_anchor,
        "maximum": item.maximum,
        "high": item.high_anchor,
    }
