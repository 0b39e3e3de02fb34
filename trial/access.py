"""Authority checks for services (21 CFR 11.10(g)): the acting user's role and site.

Every service that writes clinical data calls `require_site_permission` first, whatever called it
(view, task, command), so a hidden button is never the only guard. `actor=None` is a system actor
(a task or a management command), whose audit context already names it.
"""

from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import PermissionDenied

from trial.models import Site, User


def require_site_permission(actor: User | None, permission: str | Collection[str], site: Site) -> None:
    """Refuse unless `actor` holds `permission` (or every one of several) and may see `site`'s
    data. One query, however many permissions (Django caches them on the user)."""
    if actor is None:
        return
    permissions = [permission] if isinstance(permission, str) else list(permission)
    if not actor.has_perms(permissions) or not Site.objects.visible_to(actor).filter(pk=site.pk).exists():
        raise PermissionDenied
