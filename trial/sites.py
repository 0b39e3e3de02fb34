"""The current site: which of the user's sites they are working in, and its time zone.

Every page shows dates and times in the current site's zone (stored in UTC). "All my sites" shows
the default zone of the installation (settings.TIME_ZONE).
"""

from __future__ import annotations

from django.utils import timezone

from trial.models import Site, SiteVisibility, site_visibility
from trial.prepared_queries import PreparedQuery

SESSION_KEY = "current_site_id"
# On the request's user: the ids of the sites request_sites read, for the rest of the request.
REQUEST_SITE_IDS = "_request_site_ids"


def sites_for(user):
    return Site.objects.visible_to(user).filter(is_active=True)


# The sites of every signed-in request, read with statements compiled once per process
# (trial.prepared_queries): sites_for's rule, a statement for each of its two cases.
_ALL_ACTIVE_SITES = PreparedQuery(lambda: Site.objects.filter(is_active=True))
_MEMBERS_ACTIVE_SITES = PreparedQuery(
    lambda user_id: Site.objects.filter(is_active=True, memberships__user_id=user_id), user_id=int
)


def _active_sites_of(user) -> list[Site]:
    """`list(sites_for(user))`."""
    visibility = site_visibility(user)
    if visibility is SiteVisibility.NONE:
        return []
    if visibility is SiteVisibility.ALL_SITES:
        return _ALL_ACTIVE_SITES()
    return _MEMBERS_ACTIVE_SITES(user_id=user.pk)


def request_sites(request) -> list[Site]:
    """The signed-in user's active sites, read once per request (the middleware, the menu's site
    selector and views share the list)."""
    sites = getattr(request, "_user_sites", None)
    if sites is None:
        sites = request._user_sites = _active_sites_of(request.user)
        # So that services called by this request's user answer "may they see this site" from it
        # (user_may_see_site). The user object is read afresh on every request, like its
        # permissions, so a membership removed takes effect on the user's next request.
        setattr(request.user, REQUEST_SITE_IDS, frozenset(site.pk for site in sites))
    return sites


def user_may_see_site(user, site: Site) -> bool:
    """Whether `user` may see `site`'s data (Site.objects.visible_to), without a statement when
    the site is one of the active sites already read for this request."""
    if site.pk in getattr(user, REQUEST_SITE_IDS, ()):
        return True
    # Not read yet this request, or an inactive site (visible_to does not exclude those).
    return Site.objects.visible_to(user).filter(pk=site.pk).exists()


def current_site(request) -> Site | None:
    site_id = request.session.get(SESSION_KEY)
    if site_id is None:
        return None
    return next((site for site in request_sites(request) if site.pk == site_id), None)


class CurrentSiteMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.site = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            request.site = current_site(request)
            if request.site is None:
                request.session.pop(SESSION_KEY, None)
        if request.site is not None:
            timezone.activate(request.site.zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
