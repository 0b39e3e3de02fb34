"""The current site: which of the user's sites they are working in, and its time zone.

Every page shows dates and times in the current site's zone (stored in UTC). "All my sites" shows
the default zone of the installation (settings.TIME_ZONE).
"""

from __future__ import annotations

from django.utils import timezone

from trial.models import Site

SESSION_KEY = "current_site_id"


def sites_for(user):
    return Site.objects.visible_to(user).filter(is_active=True)


def request_sites(request) -> list[Site]:
    """The signed-in user's active sites, read once per request (the middleware, the menu's site
    selector and views share the list)."""
    sites = getattr(request, "_user_sites", None)
    if sites is None:
        sites = request._user_sites = list(sites_for(request.user))
    return sites


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
