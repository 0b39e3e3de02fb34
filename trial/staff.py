"""Staff pages: administrators invite users, grant and remove roles and sites, deactivate and
reactivate accounts, reset two-factor, and read the access log. Every change goes through
`trial.services`, which records who, when and why in the audit trail.
"""

from __future__ import annotations

import smtplib

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse, reverse_lazy
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import DetailView, FormView, ListView, TemplateView
from django.views.generic.detail import SingleObjectMixin
from django_otp.plugins.otp_totp.models import TOTPDevice

from trial import services
from trial.access_log import access_events, describe
from trial.models import SiteMembership, User
from trial.staff_forms import ReasonForm, UserAccessForm, UserFilterForm, UserInviteForm

ACCESS_LOG_PAGE_SIZE = 50


def users_with_access(request_user):
    """Users with their roles and sites prefetched: three queries however many users."""
    return User.objects.visible_to(request_user).prefetch_related(
        "groups",
        Prefetch(
            "memberships", queryset=SiteMembership.objects.select_related("site").order_by("site__code")
        ),
    )


class ManageUsersMixin(PermissionRequiredMixin):
    permission_required = "trial.manage_users"


class AccountMixin(SingleObjectMixin):
    """The user a page is about, as `account` (`user` stays the signed-in user in templates)."""

    context_object_name = "account"

    def get_queryset(self):
        return users_with_access(self.request.user)


class LoadAccountMixin(AccountMixin):
    def dispatch(self, request, *args, **kwargs):
        # Placed after ManageUsersMixin: others get 403 before any user is looked up.
        self.object = self.get_object()
        return super().dispatch(request, *args, **kwargs)


class UserListView(ManageUsersMixin, ListView):
    template_name = "trial/staff_user_list.html"
    context_object_name = "accounts"

    def get_queryset(self):
        self.filter_form = UserFilterForm(self.request.GET or None)
        return self.filter_form.filter(users_with_access(self.request.user)).order_by("full_name", "email")

    def get_context_data(self, **kwargs):
        return super().get_context_data(filter_form=self.filter_form, **kwargs)


class UserInviteView(ManageUsersMixin, FormView):
    template_name = "trial/staff_user_form.html"
    form_class = UserInviteForm
    extra_context = {
        "title": gettext_lazy("New user"),
        "submit_label": gettext_lazy("Create and send e-mail"),
        "cancel_url": reverse_lazy("user-list"),
    }

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            account = services.user_invite(
                actor=self.request.user,
                email=data["email"],
                full_name=data["full_name"],
                roles=data["roles"],
                sites=data["sites"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.form_invalid(form)
        messages.success(
            self.request,
            _("%(name)s can now set a password from the e-mail sent to %(email)s.")
            % {"name": account.full_name, "email": account.email},
        )
        return redirect("user-detail", pk=account.pk)


class UserDetailView(ManageUsersMixin, AccountMixin, DetailView):
    template_name = "trial/staff_user_detail.html"

    def get_context_data(self, **kwargs):
        account = self.object
        return super().get_context_data(
            two_factor_enrolled=TOTPDevice.objects.filter(user=account, confirmed=True).exists(),
            access_entries=describe(access_events(user=account)),
            is_self=account.pk == self.request.user.pk,
            **kwargs,
        )


class UserAccessView(ManageUsersMixin, LoadAccountMixin, FormView):
    template_name = "trial/staff_user_form.html"
    form_class = UserAccessForm
    submit_label = gettext_lazy("Save access")

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "account": self.object}

    def get_context_data(self, **kwargs):
        title = _("Roles and sites of %(name)s") % {"name": self.object}
        return super().get_context_data(
            title=title,
            submit_label=self.submit_label,
            cancel_url=reverse("user-detail", args=[self.object.pk]),
            **kwargs,
        )

    def form_valid(self, form):
        if not form.has_access_changes():
            messages.info(self.request, _("Nothing changed."))
            return redirect("user-detail", pk=self.object.pk)
        try:
            services.user_set_access(
                actor=self.request.user,
                user=self.object,
                roles=form.cleaned_data["roles"],
                sites=form.cleaned_data["sites"],
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.form_invalid(form)
        messages.success(self.request, _("Access of %(name)s saved.") % {"name": self.object})
        return redirect("user-detail", pk=self.object.pk)


class AccountActionView(ManageUsersMixin, LoadAccountMixin, FormView):
    """Confirm an action on an account with a reason for change, then call one service."""

    template_name = "trial/staff_user_action.html"
    form_class = ReasonForm
    title = explanation = submit_label = done = ""

    def already_done(self, account: User) -> str:
        """A message when the account is already in the state the action leads to."""
        return ""

    def perform(self, account: User, reason: str) -> None:
        raise NotImplementedError

    def get(self, request, *args, **kwargs):
        if message := self.already_done(self.object):
            messages.info(request, message)
            return redirect("user-detail", pk=self.object.pk)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=self.title % {"name": self.object},
            explanation=self.explanation,
            submit_label=self.submit_label,
            **kwargs,
        )

    def form_valid(self, form):
        if message := self.already_done(self.object):
            messages.info(self.request, message)
            return redirect("user-detail", pk=self.object.pk)
        try:
            self.perform(self.object, form.cleaned_data["reason"])
        except ValidationError as exc:
            form.add_error(None, exc)
            return self.form_invalid(form)
        messages.success(self.request, self.done % {"name": self.object})
        return redirect("user-detail", pk=self.object.pk)


class UserDeactivateView(AccountActionView):
    title = gettext_lazy("Deactivate %(name)s")
    explanation = gettext_lazy(
        "A deactivated user cannot sign in. Their account, roles, sites and everything they "
        "recorded are kept, and they can be reactivated later."
    )
    submit_label = gettext_lazy("Deactivate")
    done = gettext_lazy("%(name)s is deactivated and can no longer sign in.")

    def already_done(self, account):
        return "" if account.is_active else _("%(name)s is already deactivated.") % {"name": account}

    def perform(self, account, reason):
        services.user_deactivate(actor=self.request.user, user=account, reason=reason)


class UserReactivateView(AccountActionView):
    title = gettext_lazy("Reactivate %(name)s")
    explanation = gettext_lazy("The user can sign in again, with the roles and sites they held.")
    submit_label = gettext_lazy("Reactivate")
    done = gettext_lazy("%(name)s is active again.")

    def already_done(self, account):
        return _("%(name)s is already active.") % {"name": account} if account.is_active else ""

    def perform(self, account, reason):
        services.user_reactivate(actor=self.request.user, user=account, reason=reason)


class UserResetTwoFactorView(AccountActionView):
    title = gettext_lazy("Reset two-factor of %(name)s")
    explanation = gettext_lazy(
        "Removes the user's authenticator app and backup codes. They must set up two-factor "
        "again at their next sign-in; pages open in their browser stop working at once."
    )
    submit_label = gettext_lazy("Reset two-factor")
    done = gettext_lazy("Two-factor of %(name)s is reset; they will set it up at their next sign-in.")

    def perform(self, account, reason):
        services.user_reset_two_factor(actor=self.request.user, user=account, reason=reason)


class UserSendSetPasswordView(ManageUsersMixin, View):
    """Send the set-password e-mail again (it expired, or never arrived). Changes no record."""

    http_method_names = ["post"]

    def post(self, request, pk: int):
        account = get_object_or_404(User.objects.visible_to(request.user), pk=pk)
        try:
            services.user_send_set_password_email(actor=request.user, user=account)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except (smtplib.SMTPException, OSError):
            messages.error(request, _("The e-mail could not be sent. Try again later."))
        else:
            messages.success(
                request, _("A set-password e-mail was sent to %(email)s.") % {"email": account.email}
            )
        return redirect("user-detail", pk=account.pk)


class AccessLogView(ManageUsersMixin, TemplateView):
    template_name = "trial/staff_access_log.html"

    def get_context_data(self, **kwargs):
        # get_page: a missing, non-numeric or out-of-range page shows the nearest page, not an error.
        page = Paginator(access_events(), ACCESS_LOG_PAGE_SIZE).get_page(self.request.GET.get("page"))
        return super().get_context_data(page_obj=page, entries=describe(page.object_list), **kwargs)
