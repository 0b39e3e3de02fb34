from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from trial.exports.dictionary import FORMS
from trial.exports.models import ExportKind
from trial.models import Site


class ExportRequestForm(forms.Form):
    kind = forms.ChoiceField(label=_("Export"), choices=ExportKind.choices)
    sites = forms.ModelMultipleChoiceField(
        label=_("Sites"),
        queryset=Site.objects.none(),
        required=False,
        help_text=_("None chosen: all your sites."),
    )
    form = forms.ChoiceField(
        label=_("Form (wide format)"),
        choices=[("", "—"), *((spec.code, spec.label) for spec in FORMS)],
        required=False,
    )
    study_id = forms.CharField(
        label=_("Participant (study id)"),
        max_length=20,
        required=False,
        help_text=_("Empty: the whole study."),
    )
    include_audit = forms.BooleanField(label=_("ODM: include audit records"), required=False)
    include_free_text = forms.BooleanField(label=_("De-identified: include free text"), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["sites"].queryset = Site.objects.visible_to(user).order_by("code")

    def parameters(self) -> dict:
        data = self.cleaned_data
        return {
            "site_ids": [site.pk for site in data["sites"]],
            "form": data["form"],
            "study_id": data["study_id"],
            "include_audit": data["include_audit"],
            "include_free_text": data["include_free_text"],
        }
