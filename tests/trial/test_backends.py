"""The sign-in backend reads a signed-in user's permissions with the user: one statement where
Django's ModelBackend takes three, with the same answers, afresh on every request."""

from __future__ import annotations

import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.factories import SiteFactory
from trial import services
from trial.accounts.backends import UserWithPermissionsBackend
from trial.models import User
from trial.roles import Role

pytestmark = pytest.mark.django_db

# A signed-in request before its view: the session, the user with their permissions, the second
# factor's device, and the user's sites when one is chosen (ModelBackend took 2 more statements).
SIGNED_IN_STATEMENTS = 4


def permission(name: str) -> Permission:
    app_label, codename = name.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def model_backend_permissions(user: User) -> set[str]:
    return ModelBackend().get_all_permissions(User.objects.get(pk=user.pk))


def test_permissions_read_with_the_user_are_model_backends_from_user_and_roles(make_user, site_a):
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    services.user_set_access(
        actor=None, user=user, roles=[Role.COORDINATOR, Role.INVESTIGATOR], sites=[site_a], reason="cover"
    )
    user.user_permissions.add(permission("trial.view_outbox"), permission("participants.add_screening"))

    with CaptureQueriesContext(connection) as captured:
        signed_in = UserWithPermissionsBackend().get_user(user.pk)
        permissions = signed_in.get_all_permissions()
        assert signed_in.has_perm("trial.view_outbox") and signed_in.has_perm(
            "participants.confirm_eligibility"
        )
        assert not signed_in.has_perm("trial.manage_users")
    assert len(captured) == 1
    assert permissions == model_backend_permissions(user)
    assert {
        "trial.view_outbox",
        "participants.add_screening",
        "participants.confirm_eligibility",
    } <= permissions


def test_a_user_without_roles_holds_no_permissions_and_no_object_permissions(make_user):
    user = make_user()
    signed_in = UserWithPermissionsBackend().get_user(user.pk)
    assert signed_in.get_all_permissions() == set() == model_backend_permissions(user)
    manager = make_user(role=Role.ADMINISTRATOR)
    signed_in = UserWithPermissionsBackend().get_user(manager.pk)
    assert signed_in.has_perm("trial.manage_users")
    assert not signed_in.has_perm("trial.manage_users", obj=user)  # ModelBackend answers none


def test_a_superuser_holds_every_permission_and_a_deactivated_user_is_not_signed_in(make_user):
    superuser = make_user(is_superuser=True)
    signed_in = UserWithPermissionsBackend().get_user(superuser.pk)
    assert signed_in.get_all_permissions() == model_backend_permissions(superuser)
    assert len(signed_in.get_all_permissions()) == Permission.objects.count()
    deactivated = make_user(role=Role.ADMINISTRATOR, is_active=False)
    assert UserWithPermissionsBackend().get_user(deactivated.pk) is None
    assert UserWithPermissionsBackend().get_user(max(User.objects.values_list("pk", flat=True)) + 1) is None


def test_a_signed_in_request_reads_session_user_and_permissions_device_and_sites_in_four_statements(
    make_user, signed_in, site_a
):
    client = signed_in(make_user(role=Role.COORDINATOR, sites=[site_a, SiteFactory()]))
    client.post(reverse("site-select"), {"site": site_a.pk, "next": "/"})
    client.get(reverse("site-list"))  # the first request after choosing records the session's activity

    with CaptureQueriesContext(connection) as captured:
        assert client.get(reverse("site-list")).status_code == 200
    before_the_view = [query["sql"] for query in captured][:SIGNED_IN_STATEMENTS]
    # Each one's table, from its first column ('SELECT "django_session"."session_key", ...').
    assert [sql.split('"')[1] for sql in before_the_view] == [
        "django_session",
        "trial_user",
        "otp_totp_totpdevice",
        "trial_site",
    ]
    assert not any('FROM "auth_permission"' in query["sql"] for query in captured[SIGNED_IN_STATEMENTS:])


def test_a_role_removed_or_granted_takes_effect_on_the_users_next_request(make_user, signed_in, site_a):
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    client = signed_in(user)
    create = reverse("participants:screening-create")
    assert client.get(create).status_code == 200

    services.user_set_access(actor=None, user=user, roles=[Role.MONITOR], sites=[site_a], reason="moved")
    assert client.get(create).status_code == 403

    services.user_set_access(actor=None, user=user, roles=[Role.COORDINATOR], sites=[site_a], reason="back")
    assert client.get(create).status_code == 200


def test_a_permission_granted_to_the_user_directly_takes_effect_on_the_next_request(make_user, signed_in):
    user = make_user(role=Role.COORDINATOR)
    client = signed_in(user)
    assert client.get(reverse("outbox")).status_code == 403
    user.user_permissions.add(permission("trial.view_outbox"))
    assert client.get(reverse("outbox")).status_code == 200
    user.user_permissions.clear()
    assert client.get(reverse("outbox")).status_code == 403
