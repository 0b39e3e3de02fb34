"""Django's admin, read-only: a place to look records up, never to change them.

Every change of users, roles, sites and memberships goes through `trial.services`, which asks for
a reason and records who and why (21 CFR 11.10(e)). The admin cannot ask for a reason, so it may
add, change and delete nothing here; it points to the "Users and access" pages instead. Users are
deactivated there, never deleted. Roles are declared in code (`trial.roles`) and re-synced after
every migrate, so groups are read-only too.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from trial.models import RoleGrant, Site, SiteMembership, User


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RoleGrantInline(ReadOnlyMixin, admin.TabularInline):
    model = RoleGrant
    fields = ("group", "granted_at")
    readonly_fields = fields
    extra = 0


class SiteMembershipInline(ReadOnlyMixin, admin.TabularInline):
    model = SiteMembership
    fields = ("site", "granted_at")
    readonly_fields = fields
    extra = 0


@admin.register(User)
class EdcUserAdmin(ReadOnlyMixin, UserAdmin):
    list_display = ("email", "full_name", "is_active", "last_login")
    list_filter = ("is_active", "groups", "memberships__site")
    search_fields = ("email", "full_name")
    ordering = ("full_name", "email")
    fieldsets = (
        (None, {"fields": ("email", "full_name", "manage")}),
        (_("Status"), {"fields": ("is_active", "is_staff", "is_superuser", "two_factor_reset_at")}),
        (_("Dates"), {"fields": ("date_joined", "last_login")}),
    )
    readonly_fields = ("manage",)
    filter_horizontal = ()
    inlines = (RoleGrantInline, SiteMembershipInline)

    @admin.display(description=_("Change access"))
    def manage(self, obj: User) -> str:
        return format_html(
            '<a href="{}">{}</a>', reverse("user-detail", args=[obj.pk]), _("On the Users and access page")
        )


@admin.register(Site)
class SiteAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "name", "time_zone", "is_active")
    list_filter = ("is_active",)
    search_fields = ("code", "name")


admin.site.unregister(Group)


@admin.register(Group)
class RoleAdmin(ReadOnlyMixin, GroupAdmin):
    pass
