"""require_site_permission: the acting user's role and site, checked by every service that writes
clinical data. For the request's own user it answers from the sites the request already read,
which are read afresh on every request."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory

from tests.factories import SiteFactory
from trial import services
from trial.access import require_site_permission
from trial.accounts.backends import UserWithPermissionsBackend
from trial.roles import Role
from trial.sites import SESSION_KEY, request_sites

pytestmark = pytest.mark.django_db

PERMISSION = "participants.add_screening"


def signed_in_request(user, site):
    """A request of `user` who chose `site`, after CurrentSiteMiddleware: the user read afresh (as
    on every request) and the user's sites read once."""
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request.session[SESSION_KEY] = site.pk
    request.user = UserWithPermissionsBackend().get_user(user.pk)
    request_sites(request)
    return request


def test_the_requests_user_at_one_of_the_requests_sites_is_allowed_without_a_statement(
    make_user, site_a, django_assert_num_queries
):
    request = signed_in_request(make_user(role=Role.COORDINATOR, sites=[site_a]), site_a)
    with django_assert_num_queries(0):
        require_site_permission(request.user, PERMISSION, site_a)


def test_another_site_or_a_missing_permission_is_refused_for_the_requests_user(
    make_user, site_a, site_b, django_assert_num_queries
):
    request = signed_in_request(make_user(role=Role.COORDINATOR, sites=[site_a]), site_a)
    with django_assert_num_queries(1), pytest.raises(PermissionDenied):
        require_site_permission(request.user, PERMISSION, site_b)
    with pytest.raises(PermissionDenied):
        require_site_permission(request.user, "participants.confirm_eligibility", site_a)


def test_an_inactive_site_of_the_user_is_still_theirs(make_user, site_a):
    # The request reads active sites only; visible_to does not exclude inactive ones.
    closed = SiteFactory(is_active=False)
    request = signed_in_request(make_user(role=Role.COORDINATOR, sites=[site_a, closed]), site_a)
    require_site_permission(request.user, PERMISSION, closed)


def test_a_site_membership_removed_is_refused_from_the_users_next_request(make_user, site_a, site_b):
    user = make_user(role=Role.COORDINATOR, sites=[site_a, site_b])
    require_site_permission(signed_in_request(user, site_b).user, PERMISSION, site_a)

    services.user_set_access(actor=None, user=user, roles=[Role.COORDINATOR], sites=[site_b], reason="left")
    with pytest.raises(PermissionDenied):
        require_site_permission(signed_in_request(user, site_b).user, PERMISSION, site_a)


def test_a_role_removed_is_refused_from_the_users_next_request(make_user, site_a):
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    require_site_permission(signed_in_request(user, site_a).user, PERMISSION, site_a)

    services.user_set_access(actor=None, user=user, roles=[Role.MONITOR], sites=[site_a], reason="moved")
    with pytest.raises(PermissionDenied):
        require_site_permission(signed_in_request(user, site_a).user, PERMISSION, site_a)


def test_a_user_who_is_not_the_requests_is_checked_in_the_database(
    make_user, site_a, django_assert_num_queries
):
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    actor = UserWithPermissionsBackend().get_user(user.pk)
    with django_assert_num_queries(1):
        require_site_permission(actor, PERMISSION, site_a)
