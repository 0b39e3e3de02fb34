"""Forms of the lesion pages: the registry (add, correct, resolve) and the visit's measurement +
injection table (lesions as rows, one form per lesion, DOMAIN.md s.3-4).

Field types, labels, units, choices and limits come from the models; the forms add what a person
typing needs: which answers go together, messages that say what is missing, and where each
refusal of the service belongs. The service (`lesions.services`) stays the guard of every rule.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.forms.formsets import TOTAL_FORM_COUNT
from django.forms.models import fields_for_model
from django.utils.text import capfirst
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from lesions.models import (
    AnatomicalSite,
    Digit,
    ImmediateComplication,
    Injection,
    Lesion,
    Phalanx,
    UltrasoundMeasurement,
)
from lesions.services import INJECTION_FIELDS, MEASUREMENT_FIELDS, LesionRow
from trial.concurrency import CONFLICT_MESSAGE
from trial.forms import ReasonForChangeMixin
from trial.protocol import PROTOCOL

DATE_INPUT = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


# --- The lesion registry ----------------------------------------------------------------------


class LesionForm(forms.Form):
    """A new lesion. Digit and phalanx belong to 'Hand: finger or thumb' only."""

    field_names = [
        "label",
        "anatomical_site",
        "digit",
        "phalanx",
        "laterality",
        "site_detail",
        "is_target",
        "first_seen_on",
    ]

    def __init__(self, *args, participant, today: dt.date, lesion: Lesion | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.participant, self.today, self.lesion = participant, today, lesion
        self.fields.update(fields_for_model(Lesion, fields=self.field_names))
        for name in ("first_seen_on", "resolved_on"):
            if name in self.fields:
                self.fields[name].widget = DATE_INPUT
        self.fields["digit"].help_text = gettext_lazy("Only for 'Hand: finger or thumb'.")
        self.fields["phalanx"].help_text = gettext_lazy(
            "Only for 'Hand: finger or thumb'. The thumb has no middle phalanx."
        )
        if "reason" in self.fields:  # the reason for change comes last
            self.fields["reason"] = self.fields.pop("reason")

    def clean_label(self) -> str:
        label = self.cleaned_data["label"].strip()
        if not label:
            raise ValidationError(_("Give the lesion a short label, e.g. L1."))
        taken = Lesion.objects.filter(participant=self.participant, label__iexact=label)
        if self.lesion is not None:
            taken = taken.exclude(pk=self.lesion.pk)
        if taken.exists():
            raise ValidationError(_("%(label)s is already used for this participant.") % {"label": label})
        return label

    def clean_first_seen_on(self) -> dt.date:
        day = self.cleaned_data["first_seen_on"]
        if day > self.today:
            raise ValidationError(_("The date first seen cannot be in the future."))
        return day

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        site = data.get("anatomical_site")
        digit, phalanx = data.get("digit"), data.get("phalanx")
        if site == AnatomicalSite.HAND_DIGIT:
            if not digit:
                self.add_error("digit", _("Choose the finger or thumb: the site is a finger or thumb."))
            if not phalanx:
                self.add_error("phalanx", _("Choose the phalanx: the site is a finger or thumb."))
            elif digit == Digit.THUMB and phalanx == Phalanx.MIDDLE:
                self.add_error("phalanx", _("The thumb has no middle phalanx: choose proximal or distal."))
        elif site:
            for name, value in (("digit", digit), ("phalanx", phalanx)):
                if value:
                    self.add_error(
                        name,
                        _(
                            "Only for 'Hand: finger or thumb': clear it, or change the anatomical site to a finger or thumb."
                        ),
                    )
        if site == AnatomicalSite.OTHER and not (data.get("site_detail") or "").strip():
            self.add_error("site_detail", _("Describe the site: the anatomical site is 'Other'."))
        resolved_on, first_seen_on = data.get("resolved_on"), data.get("first_seen_on")
        if resolved_on:
            if resolved_on > self.today:
                self.add_error("resolved_on", _("The resolution date cannot be in the future."))
            elif first_seen_on and resolved_on < first_seen_on:
                self.add_error("resolved_on", _("A lesion cannot resolve before it was first seen."))
        return data


class LesionChangeForm(ReasonForChangeMixin, LesionForm):
    """Correct a lesion, or record that it resolved (it stays in the registry with the date)."""

    field_names = [*LesionForm.field_names, "resolved_on"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resolved_on"].help_text = gettext_lazy(
            "When the lesion is no longer seen. It stays in the registry and its history is kept."
        )
        # The version the form was opened at (trial.concurrency): a later save by someone else
        # is a conflict, not an overwrite.
        self.fields["row_version"] = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def changed_values(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.changed_data if name in self.field_names}


def lesion_initial(lesion: Lesion) -> dict[str, Any]:
    return {
        **{name: getattr(lesion, name) for name in LesionChangeForm.field_names},
        "row_version": lesion.row_version,
    }


# --- The visit table: one form per lesion -----------------------------------------------------


@dataclass
class VisitRow:
    """What the table knows of one lesion at a visit: what is saved, and the last measurement."""

    lesion: Lesion
    measurement: UltrasoundMeasurement | None = None
    injection: Injection | None = None
    previous: UltrasoundMeasurement | None = None

    @property
    def previous_summary(self) -> str:
        """The last earlier measurement, to compare with while typing."""
        m = self.previous
        if m is None:
            return ""
        depth = f"{m.depth_mm}" if m.depth_mm is not None else _("depth not measurable")
        return _("Last (%(visit)s): %(l)s × %(w)s × %(d)s mm") % {
            "visit": m.visit.code,
            "l": m.length_mm,
            "w": m.width_mm,
            "d": depth,
        }


def _model_field(model, name):
    return model._meta.get_field(name)


SMALL = "form-control form-control-sm"
SELECT = "form-select form-select-sm"
CHECK = "form-check-input"


def _width(rem: str) -> str:
    """The class of static/css/edc.css that sets this width ("5.5rem" -> "w-5-5rem"): the
    Content-Security-Policy refuses style="" attributes."""
    return "w-" + rem.replace(".", "-")


def _number(model, name, width: str) -> forms.Field:
    """The model's decimal field, with its plausibility limits checked by the form too: a model
    field's validators do not reach its form field, and here each error belongs next to its input."""
    model_field = _model_field(model, name)
    limits = {}
    for validator in model_field.validators:
        if isinstance(validator, MinValueValidator):
            limits["min_value"] = validator.limit_value
        elif isinstance(validator, MaxValueValidator):
            limits["max_value"] = validator.limit_value
    field = model_field.formfield(required=False, **limits)
    field.widget.attrs.update({"class": f"{SMALL} {_width(width)}", "inputmode": "decimal"})
    return field


@functools.cache
def _measurement_fields() -> dict[str, forms.Field]:
    """The measurement's fields, built once and shared by the rows (`_row_fields`)."""
    m = UltrasoundMeasurement
    fields = {
        "length_mm": _number(m, "length_mm", "5.5rem"),
        "width_mm": _number(m, "width_mm", "5.5rem"),
        "depth_mm": _number(m, "depth_mm", "5.5rem"),
        "depth_not_measurable_reason": forms.ChoiceField(
            required=False,
            choices=[
                ("", gettext_lazy("Depth measured")),
                *_model_field(m, "depth_not_measurable_reason").choices,
            ],
        ),
        "posterior_shadowing": forms.BooleanField(required=False),
        "overlying_ulceration": forms.BooleanField(required=False),
        "doppler_signal": forms.ChoiceField(
            required=False, choices=[("", "—"), *_model_field(m, "doppler_signal").choices]
        ),
        "operator": forms.CharField(required=False, max_length=200),
        "device": forms.CharField(required=False, max_length=200),
    }
    fields["depth_not_measurable_reason"].widget.attrs.update({"class": f"{SELECT} {_width('11rem')}"})
    fields["doppler_signal"].widget.attrs.update({"class": f"{SELECT} {_width('7.5rem')}"})
    for name in ("posterior_shadowing", "overlying_ulceration"):
        fields[name].widget.attrs["class"] = CHECK
    for name in ("operator", "device"):
        fields[name].widget.attrs.update({"class": f"{SMALL} {_width('9rem')}"})
    for field in fields.values():
        field.bound_field_class = RowInput
    return fields


def _decimal_choice(value: str) -> Decimal:
    """Decimal() refuses text with InvalidOperation, which TypedChoiceField does not catch (it
    catches ValueError and says "Select a valid choice"); left alone, text posted in a choice
    field was a server error."""
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError(value) from None


@functools.cache
def _injection_fields() -> dict[str, forms.Field]:
    """The injection's fields, built once (as `_measurement_fields`)."""
    i = Injection
    dosing = PROTOCOL.dosing
    fields = {
        "concentration_mg_per_ml": forms.TypedChoiceField(
            required=False,
            coerce=_decimal_choice,
            empty_value=None,
            choices=[
                (_decimal_text(c), f"{_decimal_text(c)} mg/mL") for c in dosing.concentrations_mg_per_ml
            ],
        ),
        "volume_ml": _number(i, "volume_ml", "5.5rem"),
        "local_anaesthetic_mixed": forms.BooleanField(required=False),
        "needle_gauge": forms.TypedChoiceField(
            required=False,
            coerce=int,
            empty_value=None,
            choices=[("", "—"), *_model_field(i, "needle_gauge").choices],
        ),
        "ultrasound_guided": forms.BooleanField(required=False),
        "immediate_pain": forms.IntegerField(required=False, min_value=0, max_value=10),
        "immediate_complications": forms.MultipleChoiceField(
            required=False, choices=ImmediateComplication.choices, widget=forms.CheckboxSelectMultiple
        ),
        "complication_detail": forms.CharField(required=False, max_length=300),
    }
    fields["concentration_mg_per_ml"].widget.attrs.update({"class": f"{SELECT} {_width('8rem')}"})
    fields["needle_gauge"].widget.attrs.update({"class": f"{SELECT} {_width('5.5rem')}"})
    fields["immediate_pain"].widget.attrs.update({"class": f"{SMALL} {_width('4.5rem')}"})
    fields["immediate_complications"].widget.attrs["class"] = CHECK
    fields["complication_detail"].widget.attrs.update({"class": f"{SMALL} {_width('12rem')}"})
    for name in ("local_anaesthetic_mixed", "ultrasound_guided"):
        fields[name].widget.attrs["class"] = CHECK
    for field in fields.values():
        field.bound_field_class = RowInput
    return fields


class RowInput(forms.BoundField):
    """An input of one lesion's row. Its field is shared by every row (`_row_fields`); what is the
    row's own lives here: the label naming the lesion ("L2 length (mm)": every input names its
    lesion for screen readers) and what `VisitTable.link_errors` points the input at."""

    def __init__(self, form: LesionRowForm, field: forms.Field, name: str):
        super().__init__(form, field, name)
        self.label = f"{form.row.lesion.label} {form.input_names[name]}"
        self.invalid = False  # shown with Bootstrap's is-invalid
        self.described_by = ""  # the ids of its error and its row's errors

    def build_widget_attrs(self, attrs, widget=None):
        # Put first, as they were when link_errors set them on each row's own copy of the widget:
        # the rendered attributes keep their order.
        own = {}
        if self.invalid:
            own["class"] = f"{(widget or self.field.widget).attrs.get('class', '')} is-invalid".strip()
        if self.described_by:
            own["aria-describedby"] = self.described_by
        return {**own, **super().build_widget_attrs({**own, **attrs}, widget)}


@functools.cache
def _row_fields(takes_measurements: bool, takes_injections: bool, editable: bool) -> dict[str, forms.Field]:
    """A row's fields, shared by every row of every table of this kind and never changed once
    built: a read-only table has its own, disabled, copies of the inputs."""
    inputs = {
        **(_measurement_fields() if takes_measurements else {}),
        **(_injection_fields() if takes_injections else {}),
    }
    if not editable:
        inputs = copy.deepcopy(inputs)
        for field in inputs.values():
            field.disabled = True
    return {
        # The lesion and the versions of its parts the row was opened with (trial.concurrency).
        "lesion": forms.IntegerField(required=False, widget=forms.HiddenInput),
        "measurement_version": forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput),
        "injection_version": forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput),
        **inputs,
    }


@functools.cache
def _input_names(language: str | None) -> dict[str, str]:
    """The inputs' names in words, in `language` ("length (mm)"): a row's labels put its lesion's
    label before them."""
    return {
        name: str(_model_field(model, name).verbose_name)
        for model, names in ((UltrasoundMeasurement, MEASUREMENT_FIELDS), (Injection, INJECTION_FIELDS))
        for name in names
    }


# What makes a row "entered": operator and device do not count, since the table-wide values (or a
# script copying them) fill them in rows nobody measured; the concentration is pre-filled.
MEASUREMENT_ANSWERS = (
    "length_mm",
    "width_mm",
    "depth_mm",
    "depth_not_measurable_reason",
    "posterior_shadowing",
    "overlying_ulceration",
    "doppler_signal",
)
INJECTION_ANSWERS = (
    "volume_ml",
    "local_anaesthetic_mixed",
    "needle_gauge",
    "ultrasound_guided",
    "immediate_pain",
    "immediate_complications",
    "complication_detail",
)


# The table's columns, in order. The computed volume and dose sit next to what they are computed
# from (read-only, never inputs); the complication details share the complications' cell.
MEASUREMENT_COLUMNS = (
    "length_mm",
    "width_mm",
    "depth_mm",
    "volume_mm3",
    "depth_not_measurable_reason",
    "posterior_shadowing",
    "overlying_ulceration",
    "doppler_signal",
    "operator",
    "device",
)
INJECTION_COLUMNS = (
    "concentration_mg_per_ml",
    "volume_ml",
    "dose_mg",
    "local_anaesthetic_mixed",
    "needle_gauge",
    "ultrasound_guided",
    "immediate_pain",
    "immediate_complications",
)
COMPUTED = {"volume_mm3": "volume", "dose_mg": "dose"}


def measurement_headers() -> list[str]:
    return [capfirst(_model_field(UltrasoundMeasurement, name).verbose_name) for name in MEASUREMENT_COLUMNS]


def injection_headers() -> list[str]:
    return [capfirst(_model_field(Injection, name).verbose_name) for name in INJECTION_COLUMNS]


@dataclass(frozen=True)
class Cell:
    """One cell of a lesion's row: an input, or a value computed when saved."""

    name: str
    field: forms.BoundField | None = None
    computed: str = ""  # "volume" / "dose" for a computed cell
    value: Any = None


def measurement_summary(m: UltrasoundMeasurement) -> str:
    depth = f"{m.depth_mm}" if m.depth_mm is not None else m.get_depth_not_measurable_reason_display()
    return _("%(l)s × %(w)s × %(d)s mm, Doppler %(doppler)s, operator %(operator)s") % {
        "l": m.length_mm,
        "w": m.width_mm,
        "d": depth,
        "doppler": m.get_doppler_signal_display().lower(),
        "operator": m.operator,
    }


def injection_summary(i: Injection) -> str:
    return _("%(volume)s mL of %(concentration)s mg/mL (%(dose)s mg), %(gauge)sG, pain %(pain)s/10") % {
        "volume": i.volume_ml,
        "concentration": _decimal_text(i.concentration_mg_per_ml),
        "dose": i.dose_mg,
        "gauge": i.needle_gauge,
        "pain": i.immediate_pain,
    }


def _decimal_text(value: Decimal) -> str:
    """250.0 -> "250" (never "2.5E+2"), as the protocol's concentrations are written."""
    return f"{value.normalize():f}"


def _blank(value) -> bool:
    # Not `value in (None, "", False, [])`: a pain score of 0 equals False, and is an answer.
    return value is None or value is False or (isinstance(value, str | list) and not value)


class LesionRowForm(forms.Form):
    """One lesion's row: its measurement and (at an injection visit) its injection.

    An empty part means "not done for this lesion at this visit"; a part with any answer must be
    complete. `lesion_row()` gives what is new or changed, for the service."""

    def __init__(
        self,
        *args,
        row: VisitRow,
        takes_measurements: bool,
        takes_injections: bool,
        table_defaults: dict[str, str],
        editable: bool,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.row = row
        self.takes_measurements, self.takes_injections = takes_measurements, takes_injections
        self.table_defaults = table_defaults
        self.conflicts: list[str] = []  # what someone else saved meanwhile, in words
        self.measurement_names = list(MEASUREMENT_FIELDS) if takes_measurements else []
        self.injection_names = list(INJECTION_FIELDS) if takes_injections else []
        # The fields built once, shared by every row (issue #9: copying ~20 fields per row was
        # the form's main cost). Nothing here changes a field: what differs from row to row, the
        # label and the links to errors, lives on the row's bound fields (`RowInput`).
        self.fields.update(_row_fields(takes_measurements, takes_injections, editable))
        self.input_names = _input_names(get_language())
        self._measurement: dict[str, Any] | None = None
        self._injection: dict[str, Any] | None = None
        self.edits_saved_row = False

    @property
    def error_id(self) -> str:
        return f"{self.prefix}-errors"

    @property
    def row_errors(self) -> list[str]:
        """Messages about the row as a whole (the service's refusals, conflicts, tampering)."""
        messages = [str(m) for m in self.non_field_errors()]
        for bound in self.hidden_fields():
            messages += [str(m) for m in bound.errors]
        return messages

    def _cells(self, columns, saved) -> list[Cell]:
        cells = []
        for name in columns:
            if name in COMPUTED:
                value = getattr(saved, name) if saved is not None else None
                cells.append(Cell(name, computed=COMPUTED[name], value=value))
            else:
                cells.append(Cell(name, field=self[name]))
        return cells

    @property
    def measurement_cells(self) -> list[Cell]:
        return self._cells(MEASUREMENT_COLUMNS, self.row.measurement) if self.takes_measurements else []

    @property
    def injection_cells(self) -> list[Cell]:
        return self._cells(INJECTION_COLUMNS, self.row.injection) if self.takes_injections else []

    def _entered(self, names) -> bool:
        return any(name in self.errors or not _blank(self.cleaned_data.get(name)) for name in names)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        posted = data.get("lesion")
        if posted is not None and posted != self.row.lesion.pk:
            raise ValidationError(
                _("The lesions of this visit changed while the page was open: check this row and save again.")
            )
        if self.takes_measurements:
            self._clean_measurement(data)
        if self.takes_injections:
            self._clean_injection(data)
        return data

    def _required(self, data, names, message) -> None:
        for name in names:
            if _blank(data.get(name)) and name not in self.errors:
                self.add_error(name, message)

    def _clean_measurement(self, data) -> None:
        saved = self.row.measurement
        # An operator or device typed in a row with nothing else makes the row entered: it is
        # then refused with what is missing, rather than dropped without a word.
        if not self._entered((*MEASUREMENT_ANSWERS, "operator", "device")):
            if saved is not None:
                self.add_error(
                    None,
                    _(
                        "The measurement of %(label)s was saved before and cannot be emptied: correct its values."
                    )
                    % {"label": self.row.lesion.label},
                )
            return
        self._required(data, ("length_mm", "width_mm"), gettext_lazy("Required: this lesion is measured."))
        self._required(data, ("doppler_signal",), gettext_lazy("Choose the Doppler signal."))
        depth, reason = data.get("depth_mm"), data.get("depth_not_measurable_reason")
        if "depth_mm" not in self.errors:
            if depth is None and not reason:
                self.add_error("depth_mm", _("Enter the depth, or choose why it is not measurable."))
            elif depth is not None and reason:
                self.add_error(
                    "depth_not_measurable_reason",
                    _("A depth is entered: leave 'depth measured', or clear the depth."),
                )
        for name in ("operator", "device"):
            if name in self.errors:
                continue
            value = (data.get(name) or "").strip() or self.table_defaults.get(name, "")
            if value:
                data[name] = value
            else:
                self.add_error(name, _("Enter it here, or once for the whole table above."))
        if any(name in self.errors for name in self.measurement_names):
            return
        values = {name: data[name] for name in MEASUREMENT_FIELDS}
        values["depth_not_measurable_reason"] = reason or ""
        self._measurement = self._changed(saved, values, "measurement_version")

    def _clean_injection(self, data) -> None:
        saved = self.row.injection
        if not self._entered(INJECTION_ANSWERS):
            if saved is not None:
                self.add_error(
                    None,
                    _(
                        "The injection of %(label)s was saved before and cannot be emptied: correct its values."
                    )
                    % {"label": self.row.lesion.label},
                )
            return
        self._required(data, ("concentration_mg_per_ml",), gettext_lazy("Choose the concentration."))
        self._required(data, ("volume_ml",), gettext_lazy("Enter the volume injected."))
        self._required(data, ("needle_gauge",), gettext_lazy("Choose the needle gauge."))
        self._required(data, ("immediate_pain",), gettext_lazy("Enter the pain score (0-10)."))
        if not data.get("ultrasound_guided"):
            self.add_error("ultrasound_guided", _("Confirm that the injection was ultrasound-guided."))
        complications = data.get("immediate_complications") or []
        detail = (data.get("complication_detail") or "").strip()
        if ImmediateComplication.OTHER in complications and not detail:
            self.add_error("complication_detail", _("Describe the other complication."))
        data["complication_detail"] = detail
        if any(name in self.errors for name in self.injection_names):
            return
        values = {name: data[name] for name in INJECTION_FIELDS}
        self._injection = self._changed(saved, values, "injection_version")

    def _changed(self, saved, values: dict[str, Any], version_name: str) -> dict[str, Any] | None:
        """The values to send, or None for a saved part left as it was: sending it would only
        run the gates again (the pregnancy test window moves on with the calendar)."""
        if saved is None:
            return values
        if all(getattr(saved, name) == value for name, value in values.items()):
            return None
        # An edit when the user saw the part as saved; if they did not, someone else saved it
        # meanwhile, which is a conflict (VisitTable.show_conflicts), not an edit.
        if self.cleaned_data.get(version_name):
            self.edits_saved_row = True
        return values

    def lesion_row(self) -> LesionRow | None:
        if self._measurement is None and self._injection is None:
            return None
        return LesionRow(
            self.row.lesion,
            measurement=self._measurement,
            measurement_version=self.cleaned_data.get("measurement_version"),
            injection=self._injection,
            injection_version=self.cleaned_data.get("injection_version"),
        )


class BaseLesionRowFormSet(forms.BaseFormSet):
    """One form per lesion of the visit, in the order of `rows`, whatever count was posted."""

    def __init__(self, *args, rows: list[VisitRow], row_kwargs: dict[str, Any], **kwargs):
        self.rows, self.row_kwargs = rows, row_kwargs
        super().__init__(*args, **kwargs)

    def total_form_count(self) -> int:
        return len(self.rows)

    def initial_form_count(self) -> int:
        return len(self.rows)

    def get_form_kwargs(self, index):
        return {**super().get_form_kwargs(index), **self.row_kwargs, "row": self.rows[index]}

    def full_clean(self):
        """Django's, less asking every row `has_changed()` (~20 inputs compared per row, about a
        tenth of a save's time, issue #9): Django asks it only to count empty extra forms against
        `min_num`, and this formset has neither. The rest is checked as Django checks it: the
        management form, every row, the number of forms posted, then `clean()`."""
        self._errors = []
        self._non_form_errors = self.error_class(error_class="nonform", renderer=self.renderer)
        if not self.is_bound:
            return
        if not self.management_form.is_valid():
            fields = ", ".join(self.management_form.add_prefix(name) for name in self.management_form.errors)
            self._non_form_errors.append(
                ValidationError(
                    self.error_messages["missing_management_form"],
                    params={"field_names": fields},
                    code="missing_management_form",
                )
            )
        self._errors = [form.errors for form in self.forms]
        try:
            if self.management_form.cleaned_data[TOTAL_FORM_COUNT] > self.absolute_max:
                raise ValidationError(
                    self.error_messages["too_many_forms"] % {"num": self.max_num}, code="too_many_forms"
                )
            self.clean()
        except ValidationError as error:
            self._non_form_errors = self.error_class(
                error.error_list, error_class="nonform", renderer=self.renderer
            )


LesionRowFormSet = forms.formset_factory(LesionRowForm, formset=BaseLesionRowFormSet, extra=0)


class VisitTableForm(forms.Form):
    """The table-wide fields: operator and device for every row, and the reason for change."""

    operator = forms.CharField(
        label=gettext_lazy("Operator for every row"),
        required=False,
        max_length=200,
        help_text=gettext_lazy("Used in each measured row whose own operator is empty."),
    )
    device = forms.CharField(
        label=gettext_lazy("Ultrasound device for every row"),
        required=False,
        max_length=200,
        help_text=gettext_lazy(
            "Manufacturer and model. Used in each measured row whose own device is empty."
        ),
    )
    reason = forms.CharField(
        label=gettext_lazy("Reason for change"),
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=gettext_lazy(
            "Needed when you change a row saved before. Recorded in the audit trail with your name and the time."
        ),
    )

    def __init__(self, *args, has_saved_rows: bool, editable: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not has_saved_rows or not editable:
            del self.fields["reason"]
        if not editable:
            for field in self.fields.values():
                field.disabled = True
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-control"

    def clean_reason(self) -> str:
        return self.cleaned_data["reason"].strip()


def _posted_int(data, key: str) -> int | None:
    try:
        return int(data.get(key) or "")
    except (TypeError, ValueError):
        return None


class VisitTable:
    """The measurement + injection table of one visit: the table-wide form and a formset with one
    form per lesion. `lesion_rows()` is what `visit_lesions_save` takes; `add_service_error` puts
    each of its refusals next to the row (lesion label) or on the table ("Session")."""

    prefix = "rows"

    def __init__(
        self,
        data=None,
        *,
        rows: list[VisitRow],
        takes_measurements: bool,
        takes_injections: bool,
        editable: bool,
    ):
        self.data, self.rows = data, rows
        self.takes_measurements, self.takes_injections = takes_measurements, takes_injections
        self.table_errors: list[str] = []
        has_saved = any(row.measurement or row.injection for row in rows)
        self.header = VisitTableForm(data, prefix="table", has_saved_rows=has_saved, editable=editable)
        defaults = {}
        if data is not None:
            defaults = {
                name: (data.get(f"table-{name}") or "").strip()[:200] for name in ("operator", "device")
            }
        self.formset = LesionRowFormSet(
            data,
            prefix=self.prefix,
            initial=[self._initial(row) for row in rows],
            rows=rows,
            row_kwargs={
                "takes_measurements": takes_measurements,
                "takes_injections": takes_injections,
                "table_defaults": defaults,
                "editable": editable,
            },
        )

    def _initial(self, row: VisitRow) -> dict[str, Any]:
        initial: dict[str, Any] = {"lesion": row.lesion.pk}
        if self.takes_measurements and row.measurement is not None:
            initial.update({name: getattr(row.measurement, name) for name in MEASUREMENT_FIELDS})
            initial["measurement_version"] = row.measurement.row_version
        if self.takes_injections:
            if row.injection is not None:
                initial.update({name: getattr(row.injection, name) for name in INJECTION_FIELDS})
                initial["concentration_mg_per_ml"] = _decimal_text(row.injection.concentration_mg_per_ml)
                initial["injection_version"] = row.injection.row_version
            else:
                initial["concentration_mg_per_ml"] = _decimal_text(
                    PROTOCOL.dosing.default_concentration_mg_per_ml
                )
        return initial

    @property
    def forms(self) -> list[LesionRowForm]:
        return self.formset.forms

    def is_valid(self) -> bool:
        valid = self.header.is_valid() & self.formset.is_valid()
        edited = [form.row.lesion.label for form in self.forms if form.edits_saved_row]
        if valid and edited and not self.header.cleaned_data.get("reason"):
            message = _("Give a reason for changing rows saved before (%(labels)s).") % {
                "labels": ", ".join(edited)
            }
            if "reason" in self.header.fields:
                self.header.add_error("reason", message)
            else:
                self.table_errors.append(message)
            valid = False
        return valid

    def lesion_rows(self) -> list[LesionRow]:
        return [row for form in self.forms if (row := form.lesion_row()) is not None]

    @property
    def reason(self) -> str:
        return self.header.cleaned_data.get("reason", "") if "reason" in self.header.fields else ""

    def add_service_error(self, exc: ValidationError) -> None:
        if not hasattr(exc, "error_dict"):
            self.table_errors.extend(exc.messages)
            return
        by_label = {form.row.lesion.label: form for form in self.forms}
        for key, messages in exc.message_dict.items():
            if key in by_label:
                by_label[key].add_error(None, messages)
            elif key == "reason" and "reason" in self.header.fields:
                self.header.add_error("reason", messages)
            else:
                self.table_errors.extend(messages)

    def show_conflicts(self) -> None:
        """After a refused save: a part someone else saved since the page was opened is shown with
        what is saved now, and its version moves on, so that saving again (after checking) writes
        the user's entries. The conflict is said whether or not the service got to that row."""
        if self.data is None:
            return
        for form in self.forms:
            row = form.row
            parts = []
            if self.takes_measurements:
                parts.append(("measurement_version", row.measurement, measurement_summary))
            if self.takes_injections:
                parts.append(("injection_version", row.injection, injection_summary))
            for name, saved, summary in parts:
                key = f"{form.prefix}-{name}"
                current = saved.row_version if saved is not None else None
                if _posted_int(self.data, key) == current:
                    continue
                if current is not None:
                    form.conflicts.append(summary(saved))
                self.data[key] = "" if current is None else str(current)
            if form.conflicts and str(CONFLICT_MESSAGE) not in form.row_errors:
                form.add_error(None, str(CONFLICT_MESSAGE))

    def link_errors(self) -> None:
        """aria-describedby of each input names its own error and its row's errors."""
        for form in self.forms:
            row_errors = bool(form.row_errors)
            for name in (*form.measurement_names, *form.injection_names):
                bound = form[name]
                ids = []
                if bound.errors:
                    ids.append(f"{bound.auto_id}_error")
                    bound.invalid = True
                if row_errors:
                    ids.append(form.error_id)
                bound.described_by = " ".join(ids)

    def error_summary(self) -> list[tuple[str, str]]:
        """(link target, message) for every problem, in page order, for the summary on top."""
        items = [
            ("#visit-lesion-table", str(m)) for m in [*self.table_errors, *self.formset.non_form_errors()]
        ]
        items += [("#main", str(m)) for m in self.header.non_field_errors()]
        for bound in self.header:
            items += [(f"#{bound.id_for_label}", f"{bound.label}: {m}") for m in bound.errors]
        for form in self.forms:
            label = form.row.lesion.label
            items += [(f"#{form.error_id}", f"{label}: {m}") for m in form.row_errors]
            for bound in form.visible_fields():
                target = bound.id_for_label or f"{bound.auto_id}_0"
                items += [(f"#{target}", f"{bound.label}: {m}") for m in bound.errors]
        return items

    @property
    def has_errors(self) -> bool:
        return bool(
            self.table_errors
            or self.header.errors
            or self.formset.non_form_errors()
            or any(form.errors for form in self.forms)
        )
