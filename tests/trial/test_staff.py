"""Staff pages: administrators invite users, grant and remove roles and sites with a reason,
deactivate, reactivate and reset two-factor; the access log shows every grant, who made it and
why; nobody else reaches any of it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, SiteFactory, UserFactory
from trial import services
from trial.models import SiteMembership, User
from trial.roles import Role
from trial.sites import SESSION_KEY

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long and unusual passphrase 7"


@pytest.fixture
def admin(make_user):
    return make_user(role=Role.ADMINISTRATOR, full_name="Ada Admin", email="ada@example.org")


@pytest.fixture
def admin_client(admin, signed_in):
    return signed_in(admin)


def can_sign_in(email: str, password: str) -> bool:
    # django-axes needs the request that carries the attempt.
    return Client().login(request=RequestFactory().post("/account/login/"), username=email, password=password)


def role_names(user: User) -> set[str]:
    return set(user.role_names())


def site_codes(user: User) -> set[str]:
    return set(user.memberships.values_list("site__code", flat=True))


def page_text(response) -> str:
    return re.sub(r"\s+", " ", response.content.decode())


# --- Inviting a user --------------------------------------------------------------------------


def invite(client, captured, **fields):
    data = {"email": "new.person@example.org", "full_name": "New Person", "roles": [], "sites": []}
    data.update(fields)
    with captured(execute=True):
        return client.post(reverse("user-create"), data)


def test_creating_a_user_grants_roles_and_sites_and_emails_a_set_password_link(
    admin_client, site_a, site_b, django_capture_on_commit_callbacks
):
    response = invite(
        admin_client,
        django_capture_on_commit_callbacks,
        email="New.Person@Example.org",
        roles=[Role.COORDINATOR.value, Role.INVESTIGATOR.value],
        sites=[site_a.pk],
    )

    user = User.objects.get(email="new.person@example.org")
    assert response.status_code == 302 and response["Location"] == reverse("user-detail", args=[user.pk])
    assert role_names(user) == {"Research coordinator", "Investigator"}
    assert site_codes(user) == {"A1"}
    assert not user.has_usable_password()  # nobody but the new user ever knows their password

    [message] = mail.outbox
    assert message.to == ["new.person@example.org"]
    assert "set your password" in message.subject
    [link] = re.findall(r"https?://\S+", message.body)
    match = resolve(urlsplit(link).path)
    assert match.url_name == "password_reset_confirm"
    assert force_str(urlsafe_base64_decode(match.kwargs["uidb64"])) == str(user.pk)
    assert default_token_generator.check_token(user, match.kwargs["token"])


def test_the_emailed_link_lets_the_new_user_choose_a_password_and_sign_in(
    admin_client, site_a, django_capture_on_commit_callbacks
):
    invite(
        admin_client, django_capture_on_commit_callbacks, roles=[Role.COORDINATOR.value], sites=[site_a.pk]
    )
    [link] = re.findall(r"https?://\S+", mail.outbox[0].body)

    newcomer = Client()
    form_page = newcomer.get(urlsplit(link).path, follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"] is True
    newcomer.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert can_sign_in("new.person@example.org", NEW_PASSWORD)
    # The link worked once: it is dead now that the password is set.
    assert newcomer.get(urlsplit(link).path, follow=True).context["validlink"] is False


def test_duplicate_email_is_refused_with_a_clear_message(
    admin_client, make_user, django_capture_on_commit_callbacks
):
    make_user(email="taken@example.org")
    response = invite(admin_client, django_capture_on_commit_callbacks, email="TAKEN@example.org")
    assert response.status_code == 200
    assert "A user with this e-mail address already exists." in page_text(response)
    assert 'role="alert"' in page_text(response)
    assert User.objects.filter(email__iexact="taken@example.org").count() == 1
    assert mail.outbox == []


def test_unknown_role_or_site_is_refused_with_a_clear_message_and_nothing_created(
    admin_client, django_capture_on_commit_callbacks
):
    response = invite(admin_client, django_capture_on_commit_callbacks, roles=["superhero"], sites=["abc"])
    text = page_text(response)
    assert response.status_code == 200
    assert "superhero is not one of the available choices" in text
    assert "“abc” is not a valid value" in text
    assert not User.objects.filter(email="new.person@example.org").exists()


def test_the_set_password_email_can_be_sent_again(admin_client, make_user):
    user = make_user(role=Role.MONITOR, email="lost.mail@example.org")
    response = admin_client.post(reverse("user-send-set-password", args=[user.pk]), follow=True)
    assert "A set-password e-mail was sent to lost.mail@example.org." in page_text(response)
    assert [m.to for m in mail.outbox] == [["lost.mail@example.org"]]


# --- Changing access --------------------------------------------------------------------------


def access_form(roles=(), sites=(), reason=""):
    return {"roles": [r.value for r in roles], "sites": [s.pk for s in sites], "reason": reason}


def test_editing_access_without_a_reason_is_refused_and_nothing_changes(
    admin_client, make_user, site_a, site_b
):
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    response = admin_client.post(
        reverse("user-access", args=[user.pk]),
        access_form(roles=[Role.INVESTIGATOR], sites=[site_b], reason="   "),
    )
    assert response.status_code == 200
    assert "Reason for change</a>: This field is required." in page_text(response)
    assert role_names(user) == {"Research coordinator"}
    assert site_codes(user) == {"A1"}


def test_the_access_log_shows_who_granted_what_and_why(admin_client, admin, make_user, site_a, site_b):
    user = make_user(role=Role.COORDINATOR, sites=[site_a], full_name="Cora Coordinator")
    response = admin_client.post(
        reverse("user-access", args=[user.pk]),
        access_form(roles=[Role.INVESTIGATOR], sites=[site_a, site_b], reason="Promoted to sub-investigator"),
    )
    assert response.status_code == 302
    assert role_names(user) == {"Investigator"}
    assert site_codes(user) == {"A1", "B1"}

    log = admin_client.get(reverse("access-log"))
    assert {(e.user, e.change, e.target, e.who, e.reason) for e in log.context["entries"]} >= {
        (user, "Role granted", "Investigator", "Ada Admin <ada@example.org>", "Promoted to sub-investigator"),
        (
            user,
            "Role removed",
            "Research coordinator",
            "Ada Admin <ada@example.org>",
            "Promoted to sub-investigator",
        ),
        (user, "Site granted", "B1 Site B", "Ada Admin <ada@example.org>", "Promoted to sub-investigator"),
    }
    text = page_text(log)
    assert "Cora Coordinator" in text and "Promoted to sub-investigator" in text and "Role removed" in text


def test_user_page_shows_access_history_two_factor_and_audit_history_link(admin_client, make_user, site_a):
    enrolled = make_user(role=Role.MONITOR, sites=[site_a], full_name="Mo Monitor")
    not_enrolled = make_user(role=Role.MONITOR, totp=False)
    services.user_set_access(
        actor=None, user=enrolled, roles=[Role.MONITOR, Role.DATA_MANAGER], sites=[site_a], reason="Covers DM"
    )

    page = admin_client.get(reverse("user-detail", args=[enrolled.pk]))
    text = page_text(page)
    assert page.context["two_factor_enrolled"] is True
    assert reverse("record-history", args=["trial.user", enrolled.pk]) in text
    assert "Data manager" in text and "Covers DM" in text and "A1 Site A" in text
    assert (
        admin_client.get(reverse("user-detail", args=[not_enrolled.pk])).context["two_factor_enrolled"]
        is False
    )
    # The audit history page of the user works for the administrator.
    assert admin_client.get(reverse("record-history", args=["trial.user", enrolled.pk])).status_code == 200


def test_access_log_times_are_shown_in_the_current_sites_time_zone(admin_client, make_user):
    tokyo = SiteFactory(code="T1", name="Tokyo", time_zone="Asia/Tokyo")
    make_user(role=Role.MONITOR, sites=[tokyo])
    assert "EST" in page_text(admin_client.get(reverse("access-log"))) or "EDT" in page_text(
        admin_client.get(reverse("access-log"))
    )
    session = admin_client.session
    session[SESSION_KEY] = tokyo.pk
    session.save()
    assert "JST" in page_text(admin_client.get(reverse("access-log")))


def test_an_administrator_cannot_remove_their_own_administrator_role(admin_client, admin):
    response = admin_client.post(
        reverse("user-access", args=[admin.pk]), access_form(roles=[Role.MONITOR], reason="oops")
    )
    assert "You cannot remove your own Administrator role" in page_text(response)
    assert role_names(admin) == {"Administrator"}


def test_saving_unchanged_access_records_nothing(admin_client, make_user, site_a):
    user = make_user(role=Role.MONITOR, sites=[site_a])
    form = page_text(admin_client.get(reverse("user-access", args=[user.pk])))
    assert re.search(r'name="roles" value="monitor"[^>]* checked>', form)
    assert re.search(rf'name="sites" value="{site_a.pk}"[^>]* checked>', form)
    assert not re.search(r'name="roles" value="coordinator"[^>]* checked>', form)
    before = admin_client.get(reverse("access-log")).context["page_obj"].paginator.count
    response = admin_client.post(
        reverse("user-access", args=[user.pk]),
        access_form(roles=[Role.MONITOR], sites=[site_a], reason="just looking"),
        follow=True,
    )
    assert "Nothing changed." in page_text(response)
    assert admin_client.get(reverse("access-log")).context["page_obj"].paginator.count == before


# --- Deactivation, reactivation, two-factor reset -------------------------------------------


def test_deactivated_user_cannot_sign_in_and_still_appears_in_the_list(admin_client, make_user, site_a):
    user = make_user(
        role=Role.COORDINATOR, sites=[site_a], email="leaver@example.org", full_name="Lee Leaver"
    )
    their_browser = sign_in(Client(), user)
    assert can_sign_in("leaver@example.org", DEFAULT_PASSWORD)

    refused = admin_client.post(reverse("user-deactivate", args=[user.pk]), {"reason": ""})
    assert "Reason for change</a>: This field is required." in page_text(refused)
    assert User.objects.get(pk=user.pk).is_active

    response = admin_client.post(reverse("user-deactivate", args=[user.pk]), {"reason": "Left the study"})
    assert response.status_code == 302

    assert not can_sign_in("leaver@example.org", DEFAULT_PASSWORD)
    # A session they already had ends too.
    assert their_browser.get(reverse("home"))["Location"].startswith(reverse("login"))
    everyone = page_text(admin_client.get(reverse("user-list")))
    assert "Lee Leaver" in everyone and "Deactivated" in everyone
    assert "Lee Leaver" in page_text(admin_client.get(reverse("user-list"), {"status": "inactive"}))
    assert "Lee Leaver" not in page_text(admin_client.get(reverse("user-list"), {"status": "active"}))
    assert "Account deactivated" in page_text(admin_client.get(reverse("access-log")))
    assert site_codes(user) == {"A1"}  # kept, for when they come back

    admin_client.post(reverse("user-reactivate", args=[user.pk]), {"reason": "Back from leave"})
    assert can_sign_in("leaver@example.org", DEFAULT_PASSWORD)


def test_deactivating_yourself_is_refused_with_a_clear_message(admin_client, admin):
    response = admin_client.post(reverse("user-deactivate", args=[admin.pk]), {"reason": "testing"})
    assert response.status_code == 200
    assert "You cannot deactivate your own account." in page_text(response)
    admin.refresh_from_db()
    assert admin.is_active


def test_resetting_two_factor_removes_the_devices_and_the_reason_is_in_the_access_log(
    admin_client, make_user
):
    user = make_user(role=Role.INVESTIGATOR, full_name="Ian Investigator")
    StaticDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    their_session = sign_in(Client(), user).session
    # What django_otp's middleware checks on each request: the device named in the session.
    assert Device.from_persistent_id(their_session[DEVICE_ID_SESSION_KEY]) is not None

    refused = admin_client.post(reverse("user-reset-two-factor", args=[user.pk]), {"reason": ""})
    assert refused.status_code == 200 and TOTPDevice.objects.filter(user=user).exists()

    admin_client.post(reverse("user-reset-two-factor", args=[user.pk]), {"reason": "Lost phone, ticket 42"})

    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticDevice.objects.filter(user=user).exists()
    assert Device.from_persistent_id(their_session[DEVICE_ID_SESSION_KEY]) is None
    [entry] = [
        e
        for e in admin_client.get(reverse("access-log")).context["entries"]
        if e.user == user and e.change == "Two-factor reset"
    ]
    assert (entry.who, entry.reason) == ("Ada Admin <ada@example.org>", "Lost phone, ticket 42")
    assert admin_client.get(reverse("user-detail", args=[user.pk])).context["two_factor_enrolled"] is False


# --- Who may do what, and bad input -----------------------------------------------------------


def staff_urls(user: User) -> list[tuple[str, str]]:
    get = [
        reverse("user-list"),
        reverse("user-create"),
        reverse("access-log"),
        reverse("user-detail", args=[user.pk]),
        reverse("user-access", args=[user.pk]),
        reverse("user-deactivate", args=[user.pk]),
        reverse("user-reactivate", args=[user.pk]),
        reverse("user-reset-two-factor", args=[user.pk]),
    ]
    post = [*get[1:2], *get[4:], reverse("user-send-set-password", args=[user.pk])]
    return [("get", url) for url in get] + [("post", url) for url in post]


@pytest.mark.parametrize("role", [Role.COORDINATOR, Role.INVESTIGATOR, Role.MONITOR, Role.DATA_MANAGER])
def test_only_administrators_reach_the_staff_pages(make_user, signed_in, site_a, role):
    other = make_user(role=Role.COORDINATOR, sites=[site_a])
    me = make_user(role=role, sites=[site_a])
    client = signed_in(me)
    for method, url in staff_urls(other) + staff_urls(me):
        data = {
            "reason": "try",
            "roles": [Role.ADMINISTRATOR.value],
            "email": "x@example.org",
            "full_name": "X",
        }
        response = getattr(client, method)(url, data if method == "post" else None)
        assert response.status_code == 403, (method, url)
    assert role_names(me) == {str(role.label)} and role_names(other) == {"Research coordinator"}
    assert User.objects.get(pk=other.pk).is_active and not User.objects.filter(email="x@example.org").exists()


def test_administrator_reaches_every_staff_page(admin_client, make_user):
    other = make_user(role=Role.COORDINATOR)
    for method, url in staff_urls(other):
        if method == "get":
            assert admin_client.get(url).status_code in (200, 302), url


def test_bad_pk_and_bad_filters_give_clear_answers_not_errors(admin_client, make_user):
    make_user(role=Role.MONITOR, full_name="Still Listed")
    assert admin_client.get("/users/999999/").status_code == 404
    assert admin_client.get("/users/abc/").status_code == 404
    assert admin_client.post("/users/999999/deactivate/", {"reason": "x"}).status_code == 404

    response = admin_client.get(reverse("user-list"), {"site": "abc", "role": "nope", "status": "active"})
    text = page_text(response)
    assert response.status_code == 200
    assert "Select a valid choice" in text and 'role="alert"' in text
    assert "Still Listed" in text  # the valid part of the filter still applies

    log = admin_client.get(reverse("access-log"), {"page": "abc"})
    assert log.status_code == 200 and log.context["page_obj"].number == 1


def test_coordinator_cannot_read_the_audit_history_of_another_site_or_user(
    make_user, signed_in, site_a, site_b
):
    other = make_user(role=Role.COORDINATOR, sites=[site_a])
    me = make_user(role=Role.COORDINATOR, sites=[site_a])
    client = signed_in(me)
    assert client.get(reverse("record-history", args=["trial.site", site_a.pk])).status_code == 200
    assert client.get(reverse("record-history", args=["trial.site", site_b.pk])).status_code == 404
    assert client.get(reverse("record-history", args=["trial.user", me.pk])).status_code == 200
    assert client.get(reverse("record-history", args=["trial.user", other.pk])).status_code == 404


# --- Query counts ----------------------------------------------------------------------------


def add_staff(n: int, sites) -> None:
    for _ in range(n):
        UserFactory(role=Role.COORDINATOR, sites=sites)


def queries_for(client, url: str, **params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params).status_code == 200
    return len(ctx.captured_queries)


def test_user_list_query_count_does_not_grow_with_users(
    admin_client, site_a, site_b, django_assert_num_queries
):
    url = reverse("user-list")
    admin_client.get(url)  # warm-up: session, permissions cache
    add_staff(3, [site_a, site_b])
    few = queries_for(admin_client, url)
    add_staff(27, [site_a, site_b])
    with django_assert_num_queries(few):
        response = admin_client.get(url)
    assert len(response.context["accounts"]) == 31


def test_access_log_query_count_does_not_grow_and_pages_hold_fifty(
    admin_client, site_a, site_b, django_assert_num_queries, django_assert_max_num_queries
):
    url = reverse("access-log")
    admin_client.get(url)
    add_staff(3, [site_a])
    few = queries_for(admin_client, url)
    add_staff(27, [site_a, site_b])  # 27 x 3 more grants: three pages
    with django_assert_num_queries(few):
        first = admin_client.get(url)
    # A page with no role (or no site) on it skips that name lookup: at most as many.
    with django_assert_max_num_queries(few):
        second = admin_client.get(url, {"page": 2})
    total = 1 + 3 * 2 + 27 * 3  # the administrator's role, then each user's role and sites
    assert first.context["page_obj"].paginator.count == total
    assert len(first.context["entries"]) == 50 and len(second.context["entries"]) == total - 50


def test_user_page_query_count_does_not_grow_with_access_history(
    admin_client, make_user, site_a, site_b, django_assert_num_queries
):
    user = make_user(role=Role.MONITOR, sites=[site_a])
    url = reverse("user-detail", args=[user.pk])
    admin_client.get(url)
    few = queries_for(admin_client, url)
    for i in range(10):
        services.user_set_access(
            actor=None,
            user=user,
            roles=[Role.MONITOR],
            sites=[site_b] if i % 2 else [site_a],
            reason=f"swap {i}",
        )
    with django_assert_num_queries(few):
        admin_client.get(url)


# --- Django admin ----------------------------------------------------------------------------


def test_admin_is_read_only_and_never_deletes_users(make_user, signed_in, site_a):
    staff = make_user(role=Role.ADMINISTRATOR, is_staff=True)
    user = make_user(role=Role.COORDINATOR, sites=[site_a], full_name="Read Only")
    client = signed_in(staff)
    change_url = reverse("admin:trial_user_change", args=[user.pk])

    page = client.get(change_url)
    assert page.status_code == 200 and "Read Only" in page_text(page)
    assert reverse("user-detail", args=[user.pk]) in page_text(page)
    assert client.post(change_url, {"email": "hijack@example.org", "full_name": "X"}).status_code == 403
    assert client.post(reverse("admin:trial_user_delete", args=[user.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:trial_user_add")).status_code == 403
    assert client.get(reverse("admin:trial_site_change", args=[site_a.pk])).status_code == 200
    assert client.post(reverse("admin:trial_site_change", args=[site_a.pk]), {"name": "X"}).status_code == 403
    user.refresh_from_db()
    assert user.email != "hijack@example.org" and SiteMembership.objects.filter(user=user).exists()
