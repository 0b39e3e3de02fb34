"""Forms of the staff pages: invite a user, change their roles and sites, filter the user list."""

from __future__ import annotations

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from trial.forms import ReasonForChangeMixin
from trial.models import Site, User
from trial.roles import Role


class ReasonForm(ReasonForChangeMixin, forms.Form):
    """Just the reason: deactivate, reactivate, reset two-factor."""


def _roles_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        label=_("Roles"),
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("A role applies at each of the user's sites."),
    )


def _sites_field(queryset) -> forms.ModelMultipleChoiceField:
    return forms.ModelMultipleChoiceField(
        label=_("Sites"),
        queryset=queryset,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The sites whose data the user may see and enter."),
    )


class UserInviteForm(forms.Form):
    email = forms.EmailField(
        label=_("E-mail address"),
        help_text=_("The user signs in with it and receives a link to set their password."),
    )
    full_name = forms.CharField(
        label=_("Full name"), max_length=200, help_text=_("Printed name, shown with e-signatures.")
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["roles"] = _roles_field()
        self.fields["sites"] = _sites_field(Site.objects.filter(is_active=True).order_by("code"))

    def clean_email(self) -> str:
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        existing = User.objects.filter(email__iexact=email).first()
        if existing is not None and not existing.is_active:
            raise forms.ValidationError(
                _("A deactivated user has this e-mail address: reactivate their account instead.")
            )
        if existing is not None:
            raise forms.ValidationError(_("A user with this e-mail address already exists."))
        return email


class UserAccessForm(ReasonForChangeMixin, forms.Form):
    field_order = ["roles", "sites", "reason"]

    def __init__(self, *args, account: User, **kwargs):
        held = {group.name for group in account.groups.all()}
        kwargs["initial"] = {
            "roles": [role.value for role in Role if str(role.label) in held],
            "sites": [membership.site for membership in account.memberships.all()],
            **(kwargs.get("initial") or {}),
        }
        super().__init__(*args, **kwargs)
        self.fields["roles"] = _roles_field()
        # Active sites, and any inactive site the user still holds, so that saving the form never
        # removes a site the administrator could not see.
        self.fields["sites"] = _sites_field(
            Site.objects.filter(Q(is_active=True) | Q(memberships__user=account)).distinct().order_by("code")
        )
        self.order_fields(self.field_order)

    def has_access_changes(self) -> bool:
        return any(name in self.changed_data for name in ("roles", "sites"))


class UserFilterForm(forms.Form):
    STATUS_CHOICES = [("", _("All")), ("active", _("Active")), ("inactive", _("Deactivated"))]

    status = forms.ChoiceField(label=_("Status"), choices=STATUS_CHOICES, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=[("", _("Any role")), *Role.choices], required=False)
    site = forms.ModelChoiceField(
        label=_("Site"), queryset=Site.objects.order_by("code"), required=False, empty_label=_("Any site")
    )

    def filter(self, users):
        """`users` narrowed by the valid filters (an invalid one is reported and ignored)."""
        if not self.is_bound:
            return users
        self.is_valid()  # cleaned_data keeps the valid fields even when another is invalid
        data = self.cleaned_data
        if data.get("status") == "active":
            users = users.filter(is_active=True)
        elif data.get("status") == "inactive":
            users = users.filter(is_active=False)
        if data.get("role"):
            users = users.filter(groups__name=str(Role(data["role"]).label))
        if data.get("site"):
            users = users.filter(memberships__site=data["site"])
        return users
