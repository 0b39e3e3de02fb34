from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from trial.signatures.models import SignatureMeaning


class SignForm(forms.Form):
    """The signer states the meaning and gives the password again (and a code when due)."""

    meaning = forms.ChoiceField(
        label=_("Meaning of this signature"),
        choices=SignatureMeaning.choices,
        initial=SignatureMeaning.REVIEWED_APPROVED,
    )
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )
    otp_token = forms.CharField(
        label=_("Code from your authenticator app"),
        required=False,
        max_length=20,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )

    def __init__(self, *args, code_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.code_required = code_required
        if code_required:
            self.fields["otp_token"].required = True
            self.fields["otp_token"].help_text = _("Your last second-factor check was too long ago.")
        else:
            del self.fields["otp_token"]


class QueueSignForm(SignForm):
    """Sign several waiting items at once: visits, eligibility checklists (by screening) and ends
    of study (by participant); at least one."""

    visits = forms.TypedMultipleChoiceField(label=_("Visits to sign"), coerce=int, choices=(), required=False)
    screenings = forms.TypedMultipleChoiceField(
        label=_("Eligibility to sign"), coerce=int, choices=(), required=False
    )
    participants = forms.TypedMultipleChoiceField(
        label=_("Ends of study to sign"), coerce=int, choices=(), required=False
    )
    SUBJECT_FIELDS = ("visits", "screenings", "participants")

    def __init__(self, *args, choices: dict[str, list[tuple[int, str]]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.SUBJECT_FIELDS:
            self.fields[name].choices = (choices or {}).get(name, [])

    def clean(self):
        cleaned = super().clean()
        if not any(cleaned.get(name) for name in self.SUBJECT_FIELDS):
            raise forms.ValidationError(_("Tick at least one item to sign."))
        return cleaned
