"""Querysets compiled once and run with each call's values (trial.prepared_queries)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import SiteFactory
from trial.models import Site, SiteMembership
from trial.prepared_queries import PreparedQuery

pytestmark = pytest.mark.django_db


def test_each_call_runs_the_one_compiled_statement_with_its_own_values(make_user):
    north, south = SiteFactory(code="N1", name="North"), SiteFactory(code="S1", name="South")
    user = make_user(sites=[south])
    sites_of = PreparedQuery(
        lambda user_id, code: Site.objects.filter(memberships__user_id=user_id, code=code).select_related(),
        user_id=int,
        code=str,
    )
    with CaptureQueriesContext(connection) as captured:
        assert sites_of(user_id=user.pk, code="S1") == [south]
        assert sites_of(user_id=user.pk, code="N1") == []
        SiteMembership.objects.create(user=user, site=north)
        assert [site.name for site in sites_of(user_id=user.pk, code="N1")] == ["North"]
    reads = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    assert len(reads) == 3  # one statement a call


def test_annotations_and_related_objects_are_made_as_the_queryset_makes_them(make_user):
    from django.db.models import Count

    site = SiteFactory(code="A1", name="Site A")
    make_user(sites=[site])
    make_user(sites=[site])
    members = PreparedQuery(
        lambda code: Site.objects.filter(code=code).annotate(members=Count("memberships")), code=str
    )
    (found,) = members(code="A1")
    assert found.members == 2 and found.name == "Site A" and found._state.db == "default"
    assert not found._state.adding


def test_a_value_changed_on_its_way_to_the_statement_is_refused():
    shifted = PreparedQuery(lambda site_id: Site.objects.filter(pk=site_id + 1), site_id=int)
    with pytest.raises(ImproperlyConfigured, match="changed on its way"):
        shifted(site_id=1)


def test_a_statement_whose_text_depends_on_a_value_is_refused():
    branching = PreparedQuery(
        lambda day: Site.objects.filter(code="x") if day.year % 2 else Site.objects.all(), day=dt.date
    )
    with pytest.raises(ImproperlyConfigured, match="depends on its values"):
        branching(day=dt.date(2026, 1, 1))


def test_a_value_that_never_reaches_the_statement_is_refused():
    ignoring = PreparedQuery(lambda site_id: Site.objects.all(), site_id=int)
    with pytest.raises(ImproperlyConfigured, match="never reach"):
        ignoring(site_id=1)


def test_values_are_the_declared_ones():
    by_code = PreparedQuery(lambda code: Site.objects.filter(code=code), code=str)
    with pytest.raises(TypeError):
        by_code(site="A1")
    with pytest.raises(TypeError, match="int, date or str"):
        PreparedQuery(lambda ratio: Site.objects.filter(pk=ratio), ratio=float)(ratio=1.0)


def test_a_prepared_query_reads_model_instances_with_values_of_their_declared_type():
    by_code = PreparedQuery(lambda code: Site.objects.filter(code=code), code=str)
    with pytest.raises(TypeError, match="not a str"):
        by_code(code=None)  # the queryset would say IS NULL, a statement "= NULL"
    with pytest.raises(ImproperlyConfigured, match="model instances only"):
        PreparedQuery(lambda code: Site.objects.filter(code=code).values("name"), code=str)(code="A1")
    with pytest.raises(ImproperlyConfigured, match="model instances only"):
        PreparedQuery(lambda code: Site.objects.filter(code=code).prefetch_related("memberships"), code=str)(
            code="A1"
        )
