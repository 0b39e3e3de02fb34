"""Forms for sites and the reason-for-change every edit of a saved record asks for."""

from __future__ import annotations

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Submit
from django import forms
from django.utils.translation import gettext_lazy as _

from trial.models import Site


class ReasonForChangeMixin(forms.Form):
    """Adds the required 'reason for change' field (21 CFR 11.10(e)) to an edit form."""

    reason = forms.CharField(
        label=_("Reason for change"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Recorded in the audit trail with your name and the time."),
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("Give a reason for changing a saved record."))
        return reason


class SiteForm(ReasonForChangeMixin, forms.ModelForm):
    class Meta:
        model = Site
        fields = ["name", "time_zone", "contact_email", "contact_phone", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.helper = FormHelper()
        self.helper.add_input(Submit("save", _("Save changes")))

    def changed_values(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.changed_data if name != "reason"}
