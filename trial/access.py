"""Authority checks for services (21 CFR 11.10(g)): the acting user's role and site.

Every service that writes clinical data calls `require_site_permission` first, whatever called it
(view, task, command), so a hidden button is never the only guard. `actor=None` is a system actor
(a task or a management command), whose audit context already names it.
"""

from __future__ import annotations

from collections.abc import Collection

from django.core.exceptions import PermissionDenied

from trial.models import Site, User
from trial.sites import user_may_see_site


def require_site_permission(actor: User | None, permission: str | Collection[str], site: Site) -> None:
    """Refuse unless `actor` holds `permission` (or every one of several) and may see `site`'s
    data. At most one query, however many permissions (Django caches them on the user), and none
    when `actor` is the request's user and `site` one of the sites read for the request."""
    if actor is None:
        return
    permissions = [permission] if isinstance(permission, str) else list(permission)
    if not actor.has_perms(permissions) or not user_may_see_site(actor, site):
        raise PermissionDenied
