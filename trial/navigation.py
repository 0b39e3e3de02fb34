"""Navigation by role: each item names the permission it needs, so a role sees only its pages."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str
    permission: str | None = None  # None: every signed-in user

    def url(self) -> str | None:
        try:
            return reverse(self.url_name)
        except NoReverseMatch:
            return None


# Apps add their pages here as they land.
NAVIGATION: tuple[NavItem, ...] = (
    NavItem(_("Home"), "home"),
    NavItem(_("Today"), "participants:today", "participants.view_visit"),
    NavItem(_("Dashboard"), "dashboard", "participants.view_participant"),
    NavItem(_("Screening"), "participants:screening-list", "participants.view_screening"),
    NavItem(_("Participants"), "participants:participant-list", "participants.view_participant"),
    NavItem(_("Eligibility to confirm"), "participants:confirmation-queue", "participants.confirm_eligibility"),
    NavItem(_("To sign"), "signatures:queue", "signatures.sign_visit"),
    NavItem(_("Queries"), "data_management:query-list", "data_management.view_query"),
    NavItem(_("Data locks"), "data_management:lock-list", "data_management.manage_locks"),
    NavItem(_("Screening log"), "participants:screening-log", "participants.view_screening"),
    NavItem(_("Consent documents"), "participants:consent-document-list", "participants.view_consentdocument"),
    NavItem(_("Deviations"), "participants:deviation-list", "participants.view_protocoldeviation"),
    NavItem(_("Questionnaires"), "pro_measures:invitation-overview", "pro_measures.view_invitation"),
    NavItem(_("Exports"), "exports:list", "exports.export_data"),
    NavItem(_("Sites"), "site-list", "trial.view_site"),
    NavItem(_("Users and access"), "user-list", "trial.manage_users"),
    NavItem(_("Outbox"), "outbox", "trial.view_outbox"),
)


def navigation(request) -> dict:
    """Template context: the signed-in user's menu and sites (for the site selector)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not getattr(user, "is_verified", lambda: True)():
        return {"nav_items": [], "nav_sites": []}
    from trial.sites import request_sites

    items = []
    for item in NAVIGATION:
        if item.permission and not user.has_perm(item.permission):
            continue
        url = item.url()
        if url:
            items.append({"label": item.label, "url": url, "active": request.path == url})
    return {"nav_items": items, "nav_sites": request_sites(request)}
