"""Forms of the sign-in pages. The two-factor forms check the code (a consuming check, like
AuthenticationForm's password check) and keep the device that accepted it."""

from __future__ import annotations

from django import forms
from django.contrib.auth import forms as auth_forms
from django.core.validators import MaxLengthValidator
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from trial import tasks
from trial.accounts import two_factor


class LoginForm(auth_forms.AuthenticationForm):
    """Django's AuthenticationForm (fields `username`, the e-mail address, and `password`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # An e-mail keyboard on phones; autocomplete="username" is already set by Django.
        self.fields["username"].widget.input_type = "email"
        # Django sets the field's max_length after creating it, so nothing enforces it: a longer
        # "address" (no account has one) went on to django-axes, whose failed-attempt record
        # cannot hold it (a server error). Refused here, before anyone is looked up.
        self.fields["username"].validators.append(MaxLengthValidator(self.fields["username"].max_length))

    def clean_username(self):
        # Addresses are stored in lower case (UserManager.create_user); accept any case, and
        # let django-axes count User@x and user@x as the same account.
        return self.cleaned_data["username"].strip().lower()


def _token_field(label) -> forms.CharField:
    return forms.CharField(
        label=label,
        max_length=32,
        # Not inputmode="numeric": backup codes contain letters.
        widget=forms.TextInput(
            attrs={
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
                "autofocus": True,
            }
        ),
    )


class TwoFactorVerifyForm(forms.Form):
    otp_token = _token_field(_("Code from your authenticator app, or a backup code"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.device = None

    def clean_otp_token(self):
        token = self.cleaned_data["otp_token"]
        try:
            self.device = two_factor.otp_token_verify(user=self.user, token=token)
        except two_factor.VerificationThrottled as exc:
            raise forms.ValidationError(exc.message, code="throttled") from None
        if self.device is None:
            raise forms.ValidationError(
                _("That code is not right. Enter the current code from your app, or an unused backup code."),
                code="invalid_token",
            )
        return token


class TwoFactorSetupForm(forms.Form):
    otp_token = _token_field(_("Code from your authenticator app"))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.enrolment = None

    def clean_otp_token(self):
        token = self.cleaned_data["otp_token"]
        try:
            self.enrolment = two_factor.totp_device_confirm(user=self.user, token=token)
        except two_factor.VerificationThrottled as exc:
            raise forms.ValidationError(exc.message, code="throttled") from None
        if self.enrolment is None:
            raise forms.ValidationError(
                _("That code is not right. Enter the 6-digit code your app shows now."),
                code="invalid_token",
            )
        return token


class PasswordResetForm(auth_forms.PasswordResetForm):
    """Queues the reset e-mail (trial.tasks) instead of sending it during the request."""

    def save(self, **kwargs) -> None:
        for user in self.get_users(self.cleaned_data["email"]):
            transaction.on_commit(
                lambda user_id=user.pk: tasks.password_reset_email_send.delay(user_id=user_id),
                robust=True,
            )
