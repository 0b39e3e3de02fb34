"""Workflows on sites, users, roles and site access. Views, admin and commands all call these.

Every function is keyword-only, atomic, and runs inside an audit context that names the acting
user and the reason, so the audit trail says who did what and why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp import devices_for_user

from trial.access_log import CONTEXT_KEY, AccessChange
from trial.accounts.password_reset import password_reset_url
from trial.audit import actor_metadata, audit_context, reason_required
from trial.models import Site, SiteMembership, User
from trial.roles import Role, group_for

SITE_EDITABLE_FIELDS = ("name", "time_zone", "contact_email", "contact_phone", "is_active")


def _require(actor: User | None, permission: str) -> None:
    # None: a system actor (command, task); its audit context already names it.
    if actor is not None and not actor.has_perm(permission):
        raise PermissionDenied


@transaction.atomic
def site_create(
    *,
    actor: User | None,
    code: str,
    name: str,
    time_zone: str = "UTC",
    reason: str = "site created",
    **extra: Any,
) -> Site:
    _require(actor, "trial.add_site")
    site = Site(code=code, name=name, time_zone=time_zone, **extra)
    site.full_clean()
    with audit_context(reason=reason, **actor_metadata(actor)):
        site.save()
    return site


@transaction.atomic
def site_update(*, actor: User | None, site: Site, data: dict[str, Any], reason: str) -> Site:
    """Change a site's details. A saved record changes only with a reason (21 CFR 11.10(e))."""
    _require(actor, "trial.change_site")
    reason = reason_required(reason)
    unknown = set(data) - set(SITE_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(f"Not editable: {', '.join(sorted(unknown))}")
    locked = Site.objects.select_for_update().get(pk=site.pk)
    for name, value in data.items():
        setattr(locked, name, value)
    locked.full_clean()
    with audit_context(reason=reason, **actor_metadata(actor)):
        locked.save(update_fields=list(data) or None)
    return locked


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    email: str,
    full_name: str,
    password: str | None = None,
    roles: Iterable[Role] = (),
    sites: Iterable[Site] = (),
    reason: str = "account created",
) -> User:
    _require(actor, "trial.manage_users")
    with audit_context(reason=reason, **actor_metadata(actor)):
        user = User(email=User.objects.normalize_email(email).lower(), full_name=full_name)
        user.set_password(password) if password else user.set_unusable_password()
        user.full_clean()
        user.save()
        for role in roles:
            user.groups.add(group_for(role))
        for site in sites:
            SiteMembership.objects.create(user=user, site=site)
    return user


@transaction.atomic
def user_set_access(
    *, actor: User | None, user: User, roles: Iterable[Role], sites: Iterable[Site], reason: str
) -> User:
    """Grant and remove roles and sites so that `user` has exactly these. Each grant is audited."""
    _require(actor, "trial.manage_users")
    reason = reason_required(reason)
    roles = [Role(role) for role in roles]
    if actor is not None and actor.pk == user.pk and Role.ADMINISTRATOR not in roles:
        if user.groups.filter(pk=group_for(Role.ADMINISTRATOR).pk).exists():
            # Otherwise an administrator can lock the trial out of its own user management.
            raise ValidationError(
                _("You cannot remove your own Administrator role; ask another administrator.")
            )
    wanted_groups = {group_for(role).pk for role in roles}
    wanted_sites = {site.pk for site in sites}
    with audit_context(reason=reason, **actor_metadata(actor)):
        current_groups = set(user.groups.values_list("pk", flat=True))
        user.groups.remove(*(current_groups - wanted_groups))
        user.groups.add(*(wanted_groups - current_groups))
        current_sites = set(user.memberships.values_list("site_id", flat=True))
        SiteMembership.objects.filter(user=user, site_id__in=current_sites - wanted_sites).delete()
        SiteMembership.objects.bulk_create(
            SiteMembership(user=user, site_id=site_id) for site_id in wanted_sites - current_sites
        )
    return user


@transaction.atomic
def user_deactivate(*, actor: User | None, user: User, reason: str) -> User:
    """Users are deactivated, never deleted; their id stays in the audit trail for good."""
    _require(actor, "trial.manage_users")
    reason = reason_required(reason)
    if actor is not None and actor.pk == user.pk:
        raise ValidationError(_("You cannot deactivate your own account."))
    with audit_context(reason=reason, **actor_metadata(actor), **{CONTEXT_KEY: AccessChange.DEACTIVATED}):
        User.objects.filter(pk=user.pk).update(is_active=False)
    user.refresh_from_db()
    return user


@transaction.atomic
def user_reactivate(*, actor: User | None, user: User, reason: str) -> User:
    _require(actor, "trial.manage_users")
    reason = reason_required(reason)
    with audit_context(reason=reason, **actor_metadata(actor), **{CONTEXT_KEY: AccessChange.REACTIVATED}):
        User.objects.filter(pk=user.pk).update(is_active=True)
    user.refresh_from_db()
    return user


@transaction.atomic
def user_reset_two_factor(*, actor: User | None, user: User, reason: str) -> User:
    """Remove every two-factor device of `user` (authenticator app, backup codes), so that they
    enrol again at their next sign-in; their sessions stop being verified at once.

    The device tables hold the TOTP secrets and are deliberately not audited (an append-only copy
    would keep every secret for good). The reset is recorded instead as an audited change of the
    user's `two_factor_reset_at`, with who and why, and is listed in the access log.
    """
    _require(actor, "trial.manage_users")
    reason = reason_required(reason)
    with audit_context(
        reason=reason, **actor_metadata(actor), **{CONTEXT_KEY: AccessChange.TWO_FACTOR_RESET}
    ):
        for device in devices_for_user(user, confirmed=None):
            device.delete()
        User.objects.filter(pk=user.pk).update(two_factor_reset_at=timezone.now())
    user.refresh_from_db()
    return user


@transaction.atomic
def user_invite(
    *,
    actor: User | None,
    email: str,
    full_name: str,
    roles: Iterable[Role] = (),
    sites: Iterable[Site] = (),
) -> User:
    """Create an account without a password and, once committed, e-mail the person a link to set
    their own (nobody else ever knows it)."""
    user = user_create(actor=actor, email=email, full_name=full_name, roles=roles, sites=sites)
    # robust: a mail server that is down must not turn a saved account into an error page; the
    # administrator can send the e-mail again from the user's page.
    transaction.on_commit(lambda: user_send_set_password_email(actor=actor, user=user), robust=True)
    return user


def user_send_set_password_email(*, actor: User | None, user: User) -> None:
    """E-mail `user` a link to set their password (a new account, or one whose e-mail was lost)."""
    _require(actor, "trial.manage_users")
    if not user.is_active:
        raise ValidationError(_("This account is deactivated; reactivate it first."))
    context = {
        "user": user,
        "study_name": settings.STUDY_NAME,
        "url": password_reset_url(user),
        "valid_days": max(1, settings.PASSWORD_RESET_TIMEOUT // 86400),
    }
    send_mail(
        subject=render_to_string("trial/staff_set_password_subject.txt", context).strip(),
        message=render_to_string("trial/staff_set_password_email.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
