"""Sign-in pages: password, then the second factor (verify, or set up an authenticator app),
and password reset. Sign-out and the password reset steps after the e-mail are Django's own."""

from __future__ import annotations

import django_otp
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.generic import FormView
from django_otp.plugins.otp_static.models import StaticDevice

from trial.accounts import two_factor
from trial.accounts.forms import LoginForm, PasswordResetForm, TwoFactorSetupForm, TwoFactorVerifyForm


class LoginView(auth_views.LoginView):
    """The password step. Success leads to the second factor, never straight to `next`."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def get_redirect_url(self):
        url = super().get_redirect_url()
        # A `next` back to this page would loop (LoginView refuses it with an error).
        return "" if url.split("?", 1)[0] == self.request.path else url

    def get_success_url(self):
        user = self.request.user
        if getattr(user, "is_verified", lambda: False)():
            return super().get_success_url()
        return two_factor.two_factor_url(user, self.get_redirect_url())


class SecondFactorMixin(auth_views.RedirectURLMixin):
    """Shared by the verify and setup pages: `next` handling and the second factor's sign-in."""

    next_page = "home"

    @method_decorator(sensitive_post_parameters("otp_token"))
    @method_decorator(never_cache)
    def dispatch(self, request, *args, **kwargs):
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def get_context_data(self, **kwargs):
        return super().get_context_data(next=self.get_redirect_url(), **kwargs)

    def otp_login(self, device) -> None:
        django_otp.login(self.request, device)
        # A new session key once both factors are passed: a key seen before (say, on a shared
        # computer) is worth nothing afterwards.
        self.request.session.cycle_key()


class TwoFactorVerifyView(SecondFactorMixin, FormView):
    form_class = TwoFactorVerifyForm
    template_name = "accounts/two_factor_verify.html"

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_verified():
            return redirect(self.get_success_url())
        if not two_factor.has_confirmed_totp_device(request.user):
            return redirect(two_factor.two_factor_url(request.user, self.get_redirect_url()))
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        self.otp_login(form.device)
        if isinstance(form.device, StaticDevice):
            left = two_factor.backup_codes_left(self.request.user)
            messages.warning(
                self.request,
                ngettext(
                    "You used a backup code; %(count)d is left.",
                    "You used a backup code; %(count)d are left.",
                    left,
                )
                % {"count": left},
            )
        return redirect(self.get_success_url())


class TwoFactorSetupView(SecondFactorMixin, FormView):
    """Enrol an authenticator app. Only for a user without one: otherwise anyone who knew the
    password could add their own app and skip the second factor."""

    form_class = TwoFactorSetupForm
    template_name = "accounts/two_factor_setup.html"

    def dispatch(self, request, *args, **kwargs):
        if two_factor.has_confirmed_totp_device(request.user):
            if request.user.is_verified():
                messages.info(request, _("Two-factor sign-in is already set up for your account."))
                return redirect(self.get_success_url())
            return redirect(two_factor.two_factor_url(request.user, self.get_redirect_url()))
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        device = two_factor.totp_device_for_setup(user=self.request.user)
        return super().get_context_data(
            qr_svg=two_factor.totp_qr_svg(device), secret=two_factor.totp_secret(device), **kwargs
        )

    def form_valid(self, form):
        enrolment = form.enrolment
        self.otp_login(enrolment.device)
        # Shown in this response only (never_cache): the codes are not kept anywhere else but in
        # django-otp's table, and a reload does not show them again.
        return render(
            self.request,
            "accounts/backup_codes.html",
            {"backup_codes": enrolment.backup_codes, "continue_url": self.get_success_url()},
        )


class PasswordResetView(auth_views.PasswordResetView):
    form_class = PasswordResetForm
