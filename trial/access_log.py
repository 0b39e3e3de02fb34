"""The access log: every grant and removal of a role or a site, and every deactivation,
reactivation and two-factor reset of an account, with when, who and why (21 CFR 11.10(d), (g)).

It is read from the audit trail itself (the RoleGrant, SiteMembership and User event tables), so
it cannot disagree with it: one UNION query, paged in the database, then one query each for the
names of the users, roles and sites on the page, however many events there are.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Case, F, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from trial.audit import DELETE, INSERT, UPDATE, event_model_for
from trial.models import RoleGrant, Site, SiteMembership, User

# The key, in the audit context of a change to a user's own row, that names the access change it
# makes (set by trial.services). Role and site grants need none: their event tables say it.
CONTEXT_KEY = "access_change"


class AccessChange(models.TextChoices):
    ROLE_GRANTED = "role_granted", _("Role granted")
    ROLE_REMOVED = "role_removed", _("Role removed")
    SITE_GRANTED = "site_granted", _("Site granted")
    SITE_REMOVED = "site_removed", _("Site removed")
    DEACTIVATED = "deactivated", _("Account deactivated")
    REACTIVATED = "reactivated", _("Account reactivated")
    TWO_FACTOR_RESET = "two_factor_reset", _("Two-factor reset")


ACCOUNT_CHANGES = (AccessChange.DEACTIVATED, AccessChange.REACTIVATED, AccessChange.TWO_FACTOR_RESET)
# Columns of the UNION, in the same order in each part.
_COLUMNS = ("entry_at", "entry_id", "entry_user", "entry_change", "entry_role", "entry_site", "entry_context")


@dataclass(frozen=True)
class AccessEntry:
    at: dt.datetime  # in the current time zone (the current site's)
    user: User  # whose access changed
    change: str
    target: str  # the role or site granted or removed; empty for account changes
    who: str
    reason: str


def _granted_or_removed(granted: str, removed: str) -> Case:
    return Case(
        When(pgh_label=INSERT, then=Value(granted)), default=Value(removed), output_field=models.TextField()
    )


def access_events(*, user: User | None = None) -> models.QuerySet:
    """Rows (dicts of `_COLUMNS`) of every access change, newest first; only `user`'s if given."""
    none_int = Value(None, output_field=models.BigIntegerField())
    roles = (
        event_model_for(RoleGrant)
        .objects.filter(pgh_label__in=[INSERT, DELETE])
        .annotate(
            entry_at=F("pgh_created_at"),
            entry_id=F("pgh_id"),
            entry_user=F("user_id"),
            entry_change=_granted_or_removed(AccessChange.ROLE_GRANTED, AccessChange.ROLE_REMOVED),
            entry_role=F("group_id"),
            entry_site=none_int,
            entry_context=F("pgh_context"),
        )
    )
    sites = (
        event_model_for(SiteMembership)
        .objects.filter(pgh_label__in=[INSERT, DELETE])
        .annotate(
            entry_at=F("pgh_created_at"),
            entry_id=F("pgh_id"),
            entry_user=F("user_id"),
            entry_change=_granted_or_removed(AccessChange.SITE_GRANTED, AccessChange.SITE_REMOVED),
            entry_role=none_int,
            entry_site=F("site_id"),
            entry_context=F("pgh_context"),
        )
    )
    accounts = (
        event_model_for(User)
        .objects.filter(pgh_label=UPDATE, **{f"pgh_context__{CONTEXT_KEY}__in": list(ACCOUNT_CHANGES)})
        .annotate(
            entry_at=F("pgh_created_at"),
            entry_id=F("pgh_id"),
            entry_user=F("pgh_obj_id"),
            entry_change=KeyTextTransform(CONTEXT_KEY, "pgh_context"),
            entry_role=none_int,
            entry_site=none_int,
            entry_context=F("pgh_context"),
        )
    )
    if user is not None:
        roles = roles.filter(user_id=user.pk)
        sites = sites.filter(user_id=user.pk)
        accounts = accounts.filter(pgh_obj_id=user.pk)
    parts = [part.values(*_COLUMNS) for part in (roles, sites, accounts)]
    # One transaction's events share a time; the change and the event id keep the order stable.
    return parts[0].union(*parts[1:], all=True).order_by("-entry_at", "entry_change", "-entry_id")


def describe(rows) -> list[AccessEntry]:
    """Turn rows of `access_events()` into entries in plain words (three queries at most)."""
    rows = list(rows)
    contexts = [row["entry_context"] or {} for row in rows]
    user_ids = {row["entry_user"] for row in rows} | {ctx.get("user") for ctx in contexts}
    users = User._base_manager.in_bulk(user_ids - {None})
    groups = Group.objects.in_bulk({row["entry_role"] for row in rows} - {None})
    sites = Site._base_manager.in_bulk({row["entry_site"] for row in rows} - {None})
    labels = dict(AccessChange.choices)

    entries = []
    for row, ctx in zip(rows, contexts, strict=True):
        if row["entry_role"] is not None:
            group = groups.get(row["entry_role"])
            target = group.name if group else f"#{row['entry_role']}"
        elif row["entry_site"] is not None:
            site = sites.get(row["entry_site"])
            target = str(site) if site else f"#{row['entry_site']}"
        else:
            target = ""
        actor = users.get(ctx.get("user"))
        if actor is not None:
            who = actor.audit_name
        elif ctx.get("actor"):
            who = str(ctx["actor"])
        else:
            who = str(_("database (no application user)"))
        entries.append(
            AccessEntry(
                at=timezone.localtime(row["entry_at"]),
                user=users[row["entry_user"]],
                change=str(labels.get(row["entry_change"], row["entry_change"])),
                target=target,
                who=who,
                reason=ctx.get("reason") or "",
            )
        )
    return entries
