"""The audit trail: every write path is captured with old values, who and why; it cannot be
altered, deleted or bypassed; an edit without a reason is refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from tests.factories import SiteFactory
from trial import services
from trial.audit import audit_context, event_model_for, record_history
from trial.models import Site, SiteMembership, User
from trial.roles import Role

pytestmark = pytest.mark.django_db

SiteEvent = event_model_for(Site)


def events_for(site: Site) -> list:
    return list(SiteEvent.objects.filter(pgh_obj_id=site.pk).order_by("pgh_id"))


def last_change(site: Site):
    return record_history(site)[-1]


def change_of(entry, label: str):
    return next(c for c in entry.changes if c.label == label)


def test_save_records_insert_and_update_with_old_value():
    site = SiteFactory(name="Old name")
    site.name = "New name"
    with audit_context(reason="typo"):
        site.save()
    entry = last_change(site)
    assert entry.action == "Changed"
    assert (change_of(entry, "site name").old, change_of(entry, "site name").new) == ("Old name", "New name")
    assert entry.reason == "typo"
    assert [e.pgh_label for e in events_for(site)] == ["insert", "update"]


def test_queryset_update_is_audited_with_old_values():
    site = SiteFactory(name="Before")
    Site.objects.filter(pk=site.pk).update(name="After", time_zone="Europe/London")
    entry = last_change(site)
    assert {(c.label, c.old, c.new) for c in entry.changes} == {
        ("site name", "Before", "After"),
        ("time zone", "America/New_York", "Europe/London"),
    }


def test_bulk_create_and_bulk_update_are_audited():
    sites = Site.objects.bulk_create([Site(code="X1", name="One"), Site(code="X2", name="Two")])
    for site in sites:
        site.name = site.name + " renamed"
    Site.objects.bulk_update(sites, ["name"])
    for site in sites:
        labels = [e.pgh_label for e in events_for(site)]
        assert labels == ["insert", "update"]
        assert change_of(last_change(site), "site name").new.endswith("renamed")


def test_delete_is_audited_with_the_row_as_it_was():
    site = SiteFactory(name="Closing site")
    site_pk = site.pk
    site.delete()
    deleted = SiteEvent.objects.get(pgh_obj_id=site_pk, pgh_label="delete")
    assert deleted.name == "Closing site"


def test_raw_sql_is_audited():
    site = SiteFactory(name="Raw before")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE trial_site SET name = %s WHERE id = %s", ["Raw after", site.pk])
    change = change_of(last_change(site), "site name")
    assert (change.old, change.new) == ("Raw before", "Raw after")


def test_who_and_why_are_recorded_for_a_service_edit(make_user):
    admin = make_user(role=Role.ADMINISTRATOR)
    site = SiteFactory(name="Main hospital")
    services.site_update(actor=admin, site=site, data={"name": "Main Hospital"}, reason="capitalisation")
    entry = last_change(site)
    assert entry.user_id == admin.pk
    assert admin.email in entry.who
    assert entry.reason == "capitalisation"


def test_a_second_edit_does_not_inherit_the_first_edits_reason(make_user):
    admin = make_user(role=Role.ADMINISTRATOR)
    site = SiteFactory()
    with audit_context(user=admin.pk):
        services.site_update(actor=admin, site=site, data={"name": "First"}, reason="first reason")
        Site.objects.filter(pk=site.pk).update(name="Second")
    assert last_change(site).reason == ""


def test_edit_without_reason_is_refused_and_nothing_changes(make_user):
    admin = make_user(role=Role.ADMINISTRATOR)
    site = SiteFactory(name="Unchanged")
    for reason in ("", "   ", None):
        with pytest.raises(ValidationError):
            services.site_update(actor=admin, site=site, data={"name": "Changed"}, reason=reason)
    site.refresh_from_db()
    assert site.name == "Unchanged"
    assert len(events_for(site)) == 1


@pytest.mark.as_owner  # the runtime role lacks the privilege anyway (test_database_roles.py)
def test_audit_rows_cannot_be_updated_or_deleted():
    site = SiteFactory()
    for statement in ("UPDATE trial_siteevent SET name = 'forged'", "DELETE FROM trial_siteevent"):
        with pytest.raises(DatabaseError, match="Cannot update or delete"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
    assert events_for(site)[0].name == site.name


@pytest.mark.parametrize(
    "ignored",
    ["{trial_siteevent:append_only}", "{trial_site:update_update}", "{trial_site:refuse_bypass}"],
)
def test_pgtrigger_ignore_bypass_fails(ignored):
    site = SiteFactory(name="Guarded")
    with pytest.raises(DatabaseError, match="triggers are bypassed"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('pgtrigger.ignore', %s, true)", [ignored])
            cursor.execute("UPDATE trial_site SET name = 'silent' WHERE id = %s", [site.pk])
            cursor.execute("UPDATE trial_siteevent SET name = 'forged'")
    site.refresh_from_db()
    assert site.name == "Guarded"
    assert [e.name for e in events_for(site)] == ["Guarded"]


def test_pgtrigger_ignore_context_manager_cannot_silence_the_trail():
    import pgtrigger

    site = SiteFactory(name="Guarded")
    with pytest.raises(DatabaseError, match="triggers are bypassed"):
        with pgtrigger.ignore("trial.Site:update_update"), transaction.atomic():
            Site.objects.filter(pk=site.pk).update(name="silent")
    assert len(events_for(site)) == 1


def test_users_are_never_deleted(make_user):
    user = make_user()
    with pytest.raises(ValidationError):
        user.delete()
    with pytest.raises(DatabaseError, match="Cannot delete"):
        with transaction.atomic():
            User.objects.filter(pk=user.pk).delete()
    assert User.objects.filter(pk=user.pk).exists()


def test_role_and_site_grants_and_removals_are_recorded(make_user, site_a, site_b):
    from trial.models import RoleGrant

    admin = make_user(role=Role.ADMINISTRATOR)
    user = make_user(role=Role.COORDINATOR, sites=[site_a])
    services.user_set_access(
        actor=admin, user=user, roles=[Role.MONITOR], sites=[site_b], reason="moved to monitoring"
    )
    role_events = event_model_for(RoleGrant).objects.filter(user_id=user.pk).order_by("pgh_id")
    site_events = event_model_for(SiteMembership).objects.filter(user_id=user.pk).order_by("pgh_id")
    assert [e.pgh_label for e in role_events] == ["insert", "delete", "insert"]
    assert [(e.pgh_label, e.site_id) for e in site_events] == [
        ("insert", site_a.pk),
        ("delete", site_a.pk),
        ("insert", site_b.pk),
    ]
    for event in [*role_events[1:], *site_events[1:]]:
        assert event.pgh_context["user"] == admin.pk
        assert event.pgh_context["reason"] == "moved to monitoring"
