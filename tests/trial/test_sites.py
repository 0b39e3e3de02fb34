"""Site pages: isolation between sites, edits with a reason, the audit history, the site selector."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import SiteFactory
from trial.models import Site
from trial.roles import Role

pytestmark = pytest.mark.django_db


def test_coordinator_sees_only_their_sites(make_user, signed_in, site_a, site_b):
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_a]))
    page = client.get(reverse("site-list")).content.decode()
    assert "Site A" in page and "Site B" not in page
    assert client.get(reverse("site-detail", args=[site_a.pk])).status_code == 200
    assert client.get(reverse("site-detail", args=[site_b.pk])).status_code == 404


def test_coordinator_cannot_edit_a_site(make_user, signed_in, site_a):
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_a]))
    response = client.post(reverse("site-edit", args=[site_a.pk]), {"name": "Hijacked", "reason": "x"})
    assert response.status_code == 403
    site_a.refresh_from_db()
    assert site_a.name == "Site A"


def test_audit_history_is_isolated_by_site(make_user, signed_in, site_a, site_b):
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_a]))
    assert client.get(reverse("record-history", args=["trial.site", site_a.pk])).status_code == 200
    assert client.get(reverse("record-history", args=["trial.site", site_b.pk])).status_code == 404


@pytest.mark.parametrize(
    "label", ["nonsense", "trial.nomodel", "auth.permission", "trial.sitemembership", "a.b.c"]
)
def test_audit_history_of_unknown_or_unaudited_model_is_404(make_user, signed_in, site_a, label):
    client = signed_in(make_user(role=Role.ADMINISTRATOR))
    assert client.get(reverse("record-history", args=[label, site_a.pk])).status_code == 404


def edit_form(site: Site, **changes) -> dict:
    data = {
        "name": site.name,
        "time_zone": site.time_zone,
        "contact_email": site.contact_email,
        "contact_phone": site.contact_phone,
        "is_active": "on" if site.is_active else "",
    }
    data.update(changes)
    return data


def test_edit_without_reason_is_refused_and_keeps_what_was_typed(make_user, signed_in, site_a):
    client = signed_in(make_user(role=Role.ADMINISTRATOR))
    response = client.post(reverse("site-edit", args=[site_a.pk]), edit_form(site_a, name="Site A North"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "This field is required" in page
    assert 'value="Site A North"' in page
    site_a.refresh_from_db()
    assert site_a.name == "Site A"


def test_edit_with_reason_shows_in_the_audit_history(make_user, signed_in, site_a):
    admin = make_user(role=Role.ADMINISTRATOR, full_name="Ada Admin")
    client = signed_in(admin)
    response = client.post(
        reverse("site-edit", args=[site_a.pk]),
        edit_form(site_a, name="Site A North", reason="Site renamed by the hospital"),
    )
    assert response.status_code == 302
    history = client.get(reverse("record-history", args=["trial.site", site_a.pk])).content.decode()
    assert "Site A North" in history and "Site A" in history
    assert "Site renamed by the hospital" in history
    assert "Ada Admin" in history
    assert "Changed" in history


def test_invalid_time_zone_is_a_field_error_not_a_500(make_user, signed_in, site_a):
    client = signed_in(make_user(role=Role.ADMINISTRATOR))
    response = client.post(
        reverse("site-edit", args=[site_a.pk]), edit_form(site_a, time_zone="Mars/Base", reason="move")
    )
    assert response.status_code == 200
    assert "is not a time zone" in response.content.decode()


def test_site_selector_switches_time_zone_and_refuses_other_sites(make_user, signed_in, site_a, site_b):
    site_a.time_zone = "Asia/Tokyo"
    site_a.save()
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_a]))
    client.post(reverse("site-select"), {"site": site_a.pk, "next": "/"})
    assert "Times are shown in Asia/Tokyo" in client.get("/").content.decode()
    response = client.post(reverse("site-select"), {"site": site_b.pk, "next": "/"}, follow=True)
    assert "not one of yours" in response.content.decode()
    response = client.post(reverse("site-select"), {"site": "'; drop table", "next": "https://evil.example"})
    assert response.status_code == 302 and response["Location"] == "/"


@pytest.mark.parametrize(
    ("role", "sees_users"),
    [
        (Role.COORDINATOR, False),
        (Role.INVESTIGATOR, False),
        (Role.MONITOR, False),
        (Role.DATA_MANAGER, False),
        (Role.ADMINISTRATOR, True),
    ],
)
def test_each_role_sees_its_own_navigation(make_user, signed_in, site_a, role, sees_users):
    page = signed_in(make_user(role=role, sites=[site_a])).get("/").content.decode()
    assert 'data-testid="role-navigation"' in page
    assert ("Users and access" in page) is sees_users


def test_site_list_query_count_does_not_grow(make_user, signed_in, django_assert_num_queries):
    admin = make_user(role=Role.ADMINISTRATOR)
    client = signed_in(admin)
    client.get(reverse("site-list"))  # warm-up: session, permissions cache

    def count(n_sites: int) -> int:
        SiteFactory.create_batch(n_sites)
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("site-list")).status_code == 200
        return len(ctx.captured_queries)

    assert count(2) == count(25)


def test_the_sites_a_request_works_in_follow_who_may_see_which_site(make_user, site_a, site_b):
    """The sites read once per request (the selector, the current site, site checks) are
    `sites_for`'s: a member's active sites, every active site for a cross-site role, none for a
    deactivated account."""
    from types import SimpleNamespace

    from trial.sites import request_sites, sites_for

    closed = SiteFactory(code="C1", name="Closed site", is_active=False)
    member = make_user(role=Role.COORDINATOR, sites=[site_a, closed])
    data_manager = make_user(role=Role.DATA_MANAGER)
    deactivated = make_user(role=Role.COORDINATOR, sites=[site_a], is_active=False)
    for user, expected in [(member, [site_a]), (data_manager, [site_a, site_b]), (deactivated, [])]:
        assert request_sites(SimpleNamespace(user=user)) == list(sites_for(user)) == expected
