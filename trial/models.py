"""People and places: users (e-mail login), sites, and which user works at which site.

Users are deactivated, never deleted (a database trigger refuses the DELETE), and their ids come
from an identity sequence, so an id is never reused (21 CFR 11.10(d), 11.300(a)). Role grants are
group memberships; both they and site memberships are audited, so every grant or removal of
access is recorded with who, when and why.
"""

from __future__ import annotations

import enum
import functools
import zoneinfo

import pgtrigger
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, Group, Permission, PermissionsMixin
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from trial.audit import audited


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            _("%(value)s is not a time zone; use an IANA name such as Europe/London."),
            params={"value": value},
        ) from None


class SiteVisibility(enum.Enum):
    """Whose data a user may see: the one rule behind every `visible_to`."""

    NONE = "none"  # signed out, or a deactivated account
    ALL_SITES = "all"  # a cross-site role (trial.view_all_sites)
    MEMBER_SITES = "member"  # the sites of their memberships


def site_visibility(user) -> SiteVisibility:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return SiteVisibility.NONE
    if user.has_perm("trial.view_all_sites"):
        return SiteVisibility.ALL_SITES
    return SiteVisibility.MEMBER_SITES


class SiteQuerySet(models.QuerySet):
    def visible_to(self, user) -> SiteQuerySet:
        """Sites whose data `user` may see: their memberships, or all for cross-site roles."""
        visibility = site_visibility(user)
        if visibility is SiteVisibility.NONE:
            return self.none()
        if visibility is SiteVisibility.ALL_SITES:
            return self
        return self.filter(memberships__user=user)


@audited
class Site(models.Model):
    code = models.CharField(
        _("site code"),
        max_length=10,
        unique=True,
        help_text=_("Short code used in study ids, e.g. 01."),
    )
    name = models.CharField(_("site name"), max_length=200)
    time_zone = models.CharField(
        _("time zone"),
        max_length=64,
        default="UTC",
        validators=[validate_time_zone],
        help_text=_("IANA name, e.g. America/New_York. Dates and times at this site show in it."),
    )
    contact_email = models.EmailField(
        _("contact e-mail"), blank=True, help_text=_("Shown to participants who need help.")
    )
    contact_phone = models.CharField(_("contact telephone"), max_length=40, blank=True)
    is_active = models.BooleanField(_("active"), default=True)

    objects = SiteQuerySet.as_manager()

    class Meta:
        ordering = ["code"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")
        permissions = [
            ("view_all_sites", _("Can see the data of every site")),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("site-detail", args=[self.pk])

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


@functools.cache
def _permission_names_sql() -> str:
    """The subquery of UserManager.with_permission_names, over the user table's own name: the
    permissions granted to the user directly, or to a role (group) the user holds."""
    q = connection.ops.quote_name
    user = f"{q(User._meta.db_table)}.{q(User._meta.pk.column)}"
    direct = User.user_permissions.through._meta
    by_role = Group.permissions.through._meta
    grant = RoleGrant._meta
    permission = Permission._meta
    content_type = ContentType._meta
    return (
        f"ARRAY(SELECT ct.{q('app_label')} || '.' || p.{q('codename')}"  # noqa: S608 - names from metadata
        f" FROM {q(permission.db_table)} p JOIN {q(content_type.db_table)} ct"
        f" ON p.{q(permission.get_field('content_type').column)} = ct.{q(content_type.pk.column)}"
        f" WHERE p.{q(permission.pk.column)} IN (SELECT d.{q(direct.get_field('permission').column)}"
        f" FROM {q(direct.db_table)} d WHERE d.{q(direct.get_field('user').column)} = {user})"
        f" OR p.{q(permission.pk.column)} IN (SELECT r.{q(by_role.get_field('permission').column)}"
        f" FROM {q(by_role.db_table)} r JOIN {q(grant.db_table)} g"
        f" ON r.{q(by_role.get_field('group').column)} = g.{q(grant.get_field('group').column)}"
        f" WHERE g.{q(grant.get_field('user').column)} = {user}))"
    )


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra) -> User:
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)

    def with_permission_names(self):
        """Users with `permission_names`: the names ("app_label.codename") of the permissions
        granted to them directly or through their roles, read in the same statement as the user
        (ModelBackend reads them in two more). Written once as SQL from the models' metadata: the
        same subquery built with nested OuterRefs cost ~4 ms of Python on every request, four
        times what PostgreSQL takes to run it."""
        names = RawSQL(_permission_names_sql(), (), output_field=ArrayField(models.CharField()))  # noqa: S611 - no input: names from metadata
        return self.annotate(permission_names=names)

    def visible_to(self, user):
        """Users an administrator may manage; everyone else sees only themself."""
        if getattr(user, "is_authenticated", False) and user.has_perm("trial.manage_users"):
            return self.all()
        if getattr(user, "is_authenticated", False):
            return self.filter(pk=user.pk)
        return self.none()


# The trail never keeps password hashes, and sign-ins (last_login) are in the access records.
@audited(exclude=("password", "last_login"))
@pgtrigger.register(
    # Users are deactivated, never deleted: their ids stay in the audit trail (11.300(a)).
    pgtrigger.Protect(name="users_are_never_deleted", operation=pgtrigger.Delete),
)
class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(_("e-mail address"), unique=True)
    full_name = models.CharField(
        _("full name"), max_length=200, help_text=_("Printed name, shown with e-signatures.")
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("Deactivate instead of deleting: a user's record is kept for the audit trail."),
    )
    is_staff = models.BooleanField(_("may use the admin site"), default=False)
    date_joined = models.DateTimeField(_("account created"), default=timezone.now)
    # Set by services.user_reset_two_factor, so that each reset is an audited change of this row
    # with who and why (the OTP device tables hold secrets and are deliberately not audited).
    two_factor_reset_at = models.DateTimeField(_("two-factor last reset"), null=True, blank=True)
    # Roles are groups; the explicit through table makes each grant an audited row.
    groups = models.ManyToManyField(
        Group,
        through="RoleGrant",
        blank=True,
        related_name="user_set",
        related_query_name="user",
        verbose_name=_("roles"),
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["full_name"]

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["full_name", "email"]
        permissions = [
            ("manage_users", _("Can create and deactivate users and grant roles and sites")),
            ("view_outbox", _("Can read the development e-mail outbox")),
        ]
        constraints = [
            models.CheckConstraint(condition=~models.Q(email=""), name="user_email_not_empty"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    def delete(self, *args, **kwargs):
        raise ValidationError(_("Users are deactivated, never deleted."))

    @property
    def audit_name(self) -> str:
        return f"{self.full_name} <{self.email}>" if self.full_name else self.email

    def role_names(self) -> list[str]:
        return [group.name for group in self.groups.all()]


@audited(history_page=False)
class SiteMembership(models.Model):
    """A user works at a site: they may see and enter that site's data, per their role."""

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="memberships", verbose_name=_("user")
    )
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="memberships", verbose_name=_("site")
    )
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)

    class Meta:
        verbose_name = _("site membership")
        verbose_name_plural = _("site memberships")
        constraints = [models.UniqueConstraint(fields=["user", "site"], name="one_membership_per_user_site")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.site.code}"


@audited(history_page=False)
class RoleGrant(models.Model):
    """A user holds a role (a group). Audited, so every grant and removal of a role is recorded
    with who, when and why, including ones made in Django's admin."""

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="role_grants", verbose_name=_("user")
    )
    group = models.ForeignKey(
        Group, on_delete=models.PROTECT, related_name="role_grants", verbose_name=_("role")
    )
    granted_at = models.DateTimeField(_("granted at"), default=timezone.now)

    class Meta:
        verbose_name = _("role grant")
        verbose_name_plural = _("role grants")
        constraints = [models.UniqueConstraint(fields=["user", "group"], name="one_grant_per_user_role")]

    def __str__(self) -> str:
        return f"{self.user}: {self.group}"
