from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from trial.data_management.models import QueryState


class QueryRaiseForm(forms.Form):
    field_name = forms.ChoiceField(label=_("Field"), required=False)
    text = forms.CharField(label=_("Query"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    suggested_value = forms.CharField(label=_("Suggested value (optional)"), required=False, max_length=200)
    assignee = forms.ModelChoiceField(label=_("Assign to"), required=False, queryset=None)

    def __init__(self, *args, field_choices, assignees, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["field_name"].choices = [("", _("The whole record")), *field_choices]
        self.fields["assignee"].queryset = assignees
        self.fields["assignee"].label_from_instance = lambda user: user.audit_name


class QueryAnswerForm(forms.Form):
    answer = forms.CharField(label=_("Answer"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    data_corrected = forms.BooleanField(
        label=_("I corrected the data (with this query's number in the reason for change)"), required=False
    )


class QueryReopenForm(forms.Form):
    text = forms.CharField(label=_("Why re-open"), widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)


class QueryFilterForm(forms.Form):
    state = forms.ChoiceField(
        label=_("State"),
        required=False,
        choices=[("", _("Open or answered")), ("all", _("All")), *QueryState.choices],
    )
    participant = forms.IntegerField(required=False, widget=forms.HiddenInput)


class LockReasonForm(forms.Form):
    """Why a lock is set (optional) or released (required): at most what the lock keeps, so a
    longer text is refused rather than cut short; CharField refuses NUL characters."""

    reason = forms.CharField(max_length=300, required=False)

    def __init__(self, *args, required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if required:
            self.fields["reason"].required = True
            self.fields["reason"].error_messages["required"] = _("Give a reason for unlocking.")

    def problem(self) -> str:
        return " ".join(self.errors.get("reason", []))
