"""Forms of the ultrasound image page: the upload and the measurement taken on the image."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from lesions.dicom.services import DIMENSIONS, DicomMeasurement
from lesions.models import MeasurementSource, PixelReview, UltrasoundMeasurement
from lesions.services import MEASUREMENT_FIELDS


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)] if data else []


class DicomUploadForm(forms.Form):
    files = MultipleFileField(
        label=_("Ultrasound DICOM files"),
        help_text=_("Ultrasound images, multi-frame clips or structured reports (.dcm); several at once."),
    )


class PixelReviewForm(forms.Form):
    outcome = forms.ChoiceField(
        label=_("Having looked at every frame, the image shows"),
        choices=[
            (PixelReview.CLEAR, PixelReview.CLEAR.label),
            (PixelReview.IDENTIFYING, PixelReview.IDENTIFYING.label),
        ],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)


class ImageMeasurementForm(forms.Form):
    """The lesion's measurement at the visit, with where its numbers came from."""

    source = forms.ChoiceField(choices=MeasurementSource.choices, widget=forms.HiddenInput)
    frame_number = forms.IntegerField(min_value=1, required=False, widget=forms.HiddenInput)
    caliper_points = forms.CharField(required=False, widget=forms.HiddenInput)
    row_version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        label=_("Reason for change"),
        required=False,
        max_length=300,
        help_text=_("Needed when a saved measurement is changed."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fields = {}
        for name in MEASUREMENT_FIELDS:
            field = UltrasoundMeasurement._meta.get_field(name).formfield()
            if name in ("length_mm", "width_mm", "depth_mm"):
                field.widget.attrs.update({"step": "0.1", "inputmode": "decimal"})
            fields[name] = field
        fields["depth_mm"].required = False
        fields["depth_not_measurable_reason"].required = False
        self.fields = {**fields, **self.fields}
        for field in self.fields.values():
            if isinstance(field.widget, forms.CheckboxInput):
                field.widget.attrs.setdefault("class", "form-check-input")
            elif not isinstance(field.widget, forms.HiddenInput):
                css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
                field.widget.attrs.setdefault("class", css)

    def clean_caliper_points(self):
        text = self.cleaned_data.get("caliper_points") or ""
        if not text:
            return {}
        try:
            points = json.loads(text)
        except ValueError as exc:
            raise ValidationError(_("The caliper points could not be read.")) from exc
        if not isinstance(points, dict) or set(points) - set(DIMENSIONS):
            raise ValidationError(_("The caliper points could not be read."))
        return points

    def clean(self):
        data = super().clean()
        if data.get("depth_mm") is None and not data.get("depth_not_measurable_reason"):
            self.add_error("depth_mm", _("Give the depth, or say why it is not measurable."))
        return data

    def measurement(self) -> DicomMeasurement:
        data = self.cleaned_data
        return DicomMeasurement(
            values={name: data[name] for name in MEASUREMENT_FIELDS},
            source=data["source"],
            frame_number=data.get("frame_number"),
            points=data.get("caliper_points") or {},
        )
