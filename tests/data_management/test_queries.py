"""Queries: raised by a monitor on one field, answered by the site, closed or re-opened; the
automatic checks; access by role and site; the list's query count."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from lesions.models import UltrasoundMeasurement
from lesions.services import LesionRow, visit_lesions_save
from participants import visits as visit_services
from tests.conftest import sign_in
from tests.lesions.conftest import measurement
from trial.audit import event_model_for
from trial.data_management import services
from trial.data_management.models import Query, QueryState

pytestmark = pytest.mark.django_db


def l1_measurement(visit):
    return UltrasoundMeasurement.objects.get(visit=visit, lesion__label="L1")


def raise_on_length(monitor, visit, **extra):
    return services.query_raise(
        actor=monitor,
        record=l1_measurement(visit),
        field_name="length_mm",
        text="Source says 21.0 mm",
        suggested_value="21.0",
        **extra,
    )


def test_query_lifecycle_raise_answer_close_reopen(completed_visit, monitor, coordinator):
    query = raise_on_length(monitor, completed_visit, assignee=coordinator)
    assert query.state == QueryState.OPEN and query.visit == completed_visit
    assert query.field_label == "length (mm)" or "length" in query.field_label.lower()

    query = services.query_answer(
        actor=coordinator, query=query, answer="Typo, corrected", data_corrected=True
    )
    assert query.state == QueryState.ANSWERED and query.answered_by == coordinator and query.data_corrected

    query = services.query_close(actor=monitor, query=query)
    assert query.state == QueryState.CLOSED and query.closed_at is not None

    query = services.query_reopen(actor=monitor, query=query, text="Still 12.0 in the table")
    assert query.state == QueryState.OPEN and query.reopen_count == 1 and query.closed_at is None
    assert "Still 12.0 in the table" in query.text

    # Every step is in the query's audit trail, with its reason.
    reasons = list(
        event_model_for(Query)
        .objects.filter(pgh_obj_id=query.pk)
        .order_by("pgh_id")
        .values_list("pgh_context__reason", flat=True)
    )
    assert reasons == [
        "Query raised",
        "Query answered",
        "Query closed",
        "Query re-opened: Still 12.0 in the table",
    ]


def test_answer_needs_text_and_an_open_query(completed_visit, monitor, coordinator):
    query = raise_on_length(monitor, completed_visit)
    with pytest.raises(ValidationError):
        services.query_answer(actor=coordinator, query=query, answer="  ")
    services.query_answer(actor=coordinator, query=query, answer="Checked: source agrees")
    with pytest.raises(ValidationError, match="Only an open query"):
        services.query_answer(actor=coordinator, query=query, answer="again")


def test_reopen_needs_a_reason(completed_visit, monitor, coordinator):
    query = raise_on_length(monitor, completed_visit)
    services.query_answer(actor=coordinator, query=query, answer="Checked")
    with pytest.raises(ValidationError):
        services.query_reopen(actor=monitor, query=query, text="")


def test_query_names_an_existing_field(completed_visit, monitor):
    with pytest.raises(ValidationError, match="no such field"):
        services.query_raise(
            actor=monitor, record=l1_measurement(completed_visit), field_name="colour", text="?"
        )


def test_assignee_must_be_a_coordinator_of_the_site(completed_visit, monitor, investigator):
    with pytest.raises(ValidationError, match="coordinator"):
        raise_on_length(monitor, completed_visit, assignee=investigator)


def test_roles_coordinator_cannot_raise_monitor_cannot_answer(completed_visit, monitor, coordinator):
    with pytest.raises(PermissionDenied):
        raise_on_length(coordinator, completed_visit)
    query = raise_on_length(monitor, completed_visit)
    with pytest.raises(PermissionDenied):
        services.query_answer(actor=monitor, query=query, answer="I answer myself")
    with pytest.raises(PermissionDenied):
        services.query_close(actor=coordinator, query=query)


def test_data_manager_raises_at_any_site(completed_visit, data_manager):
    assert raise_on_length(data_manager, completed_visit).raised_by == data_manager


def test_monitor_of_another_site_can_neither_raise_nor_see(completed_visit, monitor, monitor_b, client):
    with pytest.raises(PermissionDenied):
        raise_on_length(monitor_b, completed_visit)
    query = raise_on_length(monitor, completed_visit)
    sign_in(client, monitor_b)
    assert client.get(reverse("data_management:query-detail", args=[query.pk])).status_code == 404
    response = client.get(reverse("data_management:query-list") + "?state=all")
    assert response.status_code == 200 and query not in response.context["queries"]


# --- Pages ------------------------------------------------------------------------------------


def test_monitor_raises_through_the_page_and_the_visit_shows_the_badge(completed_visit, monitor, client):
    sign_in(client, monitor)
    record = l1_measurement(completed_visit)
    url = reverse("data_management:query-raise", args=["lesions.ultrasoundmeasurement", record.pk])
    response = client.post(url, {"field_name": "length_mm", "text": "Please check against the report"})
    query = Query.objects.get()
    assert response.status_code == 302 and response["Location"] == query.get_absolute_url()

    page = client.get(completed_visit.get_absolute_url()).content.decode()
    assert "1 open query" in page


def test_list_filters_by_state_and_participant_and_shows_age(completed_visit, monitor, coordinator, client):
    answered = raise_on_length(monitor, completed_visit)
    services.query_answer(actor=coordinator, query=answered, answer="ok")
    closed = raise_on_length(monitor, completed_visit)
    services.query_close(actor=monitor, query=closed)
    with time_machine.travel(dt.datetime(2026, 11, 8, 15, 0, tzinfo=dt.UTC), tick=False):
        opened = raise_on_length(monitor, completed_visit)
    with time_machine.travel(dt.datetime(2026, 11, 10, 15, 0, tzinfo=dt.UTC), tick=False):
        sign_in(client, coordinator)
        url = reverse("data_management:query-list")
        assert [q.pk for q in client.get(url).context["queries"]] == [opened.pk, answered.pk]
        assert [q.pk for q in client.get(url + "?state=closed").context["queries"]] == [closed.pk]
        rows = client.get(url + f"?state=open&participant={completed_visit.participant_id}").context[
            "queries"
        ]
        assert [(q.pk, q.age) for q in rows] == [(opened.pk, 2)]


def test_coordinator_answers_and_monitor_closes_on_the_detail_page(
    completed_visit, monitor, coordinator, client
):
    query = raise_on_length(monitor, completed_visit)
    url = reverse("data_management:query-detail", args=[query.pk])
    sign_in(client, coordinator)
    assert client.post(url, {"action": "close"}).status_code == 403
    client.post(url, {"action": "answer", "answer": "Caliper misread; corrected", "data_corrected": "on"})
    sign_in(client, monitor)
    client.post(url, {"action": "close"})
    query.refresh_from_db()
    assert query.state == QueryState.CLOSED and query.data_corrected


def test_list_query_count_does_not_grow(
    completed_visit, monitor, coordinator, client, django_assert_max_num_queries, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from trial.data_management import views

    monkeypatch.setattr(views, "QUERY_PAGE_SIZE", 3)  # the larger list fills a page and more
    sign_in(client, coordinator)
    url = reverse("data_management:query-list") + "?state=all"

    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    raise_on_length(monitor, completed_visit)
    small = count()
    for _ in range(6):
        raise_on_length(monitor, completed_visit)
    services.query_raise(actor=monitor, record=completed_visit, field_name="visit_date", text="Date?")
    assert count() == small


def test_a_form_page_reads_its_query_badges_at_once_however_many_rows(
    participant, lesions, baseline, coordinator, monitor, client
):
    """The lesion table shows one badge per measured lesion: the open queries are read once for
    the page, so 2 and 10 rows with a query each cost the same number of database queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.lesions.test_views import add_lesions

    def measure_and_query(rows):
        visit_lesions_save(
            actor=coordinator,
            visit=baseline,
            rows=[LesionRow(lesion, measurement=measurement()) for lesion in rows],
        )
        for row in UltrasoundMeasurement.objects.filter(visit=baseline, lesion__in=rows):
            services.query_raise(actor=monitor, record=row, field_name="depth_mm", text="Depth?")

    url = reverse("lesions:visit-table", args=[baseline.pk])
    sign_in(client, monitor)

    def page() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200
        return len(captured), response.content.decode()

    measure_and_query(lesions[:2])
    with_two, text = page()
    assert text.count("1 open query") == 2
    measure_and_query([lesions[2], *add_lesions(participant, coordinator, 7, start=4)])
    with_ten, text = page()
    assert text.count("1 open query") == 10
    assert with_ten == with_two


# --- Automatic checks -------------------------------------------------------------------------


def test_out_of_window_visit_is_queried_once(participant, coordinator):
    baseline = participant.visits.get(code="W0")
    late = baseline.window_closes + dt.timedelta(days=2)
    with time_machine.travel(dt.datetime.combine(late, dt.time(15), tzinfo=dt.UTC), tick=False):
        visit_services.visit_complete(actor=coordinator, visit=baseline, visit_date=late)
        assert services.auto_queries_raise() >= 1
        query = Query.objects.get(check_key=f"visit-out-of-window:{baseline.pk}")
        assert query.raised_by is None and query.field_name == "visit_date"
        assert services.auto_queries_raise() == 0  # idempotent
        assert Query.objects.filter(check_key__startswith="visit-out-of-window").count() == 1


def test_measurement_change_above_half_is_queried_once(completed_visit, participant, lesions, coordinator):
    week4 = participant.visits.filter(sequence__gt=completed_visit.sequence).order_by("sequence").first()
    day = week4.target_date
    l1 = lesions[0]
    with time_machine.travel(dt.datetime.combine(day, dt.time(15), tzinfo=dt.UTC), tick=False):
        visit_lesions_save(
            actor=coordinator,
            visit=week4,
            rows=[LesionRow(l1, measurement=measurement("19.0", "8.0", "5.0"))],
        )
        services.auto_queries_raise()
        services.auto_queries_raise()
    changed = UltrasoundMeasurement.objects.get(visit=week4, lesion=l1)
    queries = Query.objects.filter(check_key__startswith="measurement-change")
    assert [(q.object_id, q.field_name) for q in queries] == [(changed.pk, "length_mm")]
    assert "12.0" in queries[0].text and "19.0" in queries[0].text


def test_missing_measurement_is_queried_after_the_window_closes(completed_visit, lesions):
    # L2 (elbow) was not measured at the baseline visit.
    assert services.auto_queries_raise() == 0  # window still open on 3 November
    after = completed_visit.window_closes + dt.timedelta(days=1)
    with time_machine.travel(dt.datetime.combine(after, dt.time(15), tzinfo=dt.UTC), tick=False):
        assert services.auto_queries_raise() == 1
        assert services.auto_queries_raise() == 0
    query = Query.objects.get()
    assert query.check_key == f"missing-measurement:{completed_visit.pk}:{lesions[1].pk}"
    assert "L2" in query.text


def test_a_closed_auto_query_is_not_raised_again(completed_visit, monitor):
    after = completed_visit.window_closes + dt.timedelta(days=1)
    with time_machine.travel(dt.datetime.combine(after, dt.time(15), tzinfo=dt.UTC), tick=False):
        services.auto_queries_raise()
        services.query_close(actor=monitor, query=Query.objects.get())
        assert services.auto_queries_raise() == 0


def test_timeline_shows_the_participants_open_queries(completed_visit, monitor, client):
    raise_on_length(monitor, completed_visit)
    services.query_raise(actor=monitor, record=completed_visit, field_name="visit_date", text="Date?")
    sign_in(client, monitor)
    page = client.get(reverse("participant-timeline", args=[completed_visit.participant_id])).content.decode()
    assert "2 open queries" in page
    assert reverse("data_management:participant-verification", args=[completed_visit.participant_id]) in page


def test_list_shows_a_page_at_a_time_and_keeps_the_filters(completed_visit, monitor, client, monkeypatch):
    from trial.data_management import views

    monkeypatch.setattr(views, "QUERY_PAGE_SIZE", 2)
    raised = []
    for day in (5, 6, 7):
        with time_machine.travel(dt.datetime(2026, 11, day, 15, 0, tzinfo=dt.UTC), tick=False):
            raised.append(raise_on_length(monitor, completed_visit))
    newest_first = [q.pk for q in reversed(raised)]
    sign_in(client, monitor)
    url = reverse("data_management:query-list")
    response = client.get(url, {"state": "open"})
    assert [q.pk for q in response.context["queries"]] == newest_first[:2]
    page = response.content.decode()
    assert "3 queries, 1–2 shown" in page
    nav = page.split('aria-label="Pages of queries"')[1].split("</nav>")[0]
    assert 'href="?state=open&amp;page=2#query-list"' in nav and 'aria-current="page"' in nav
    response = client.get(url, {"state": "open", "page": "2"})
    assert [q.pk for q in response.context["queries"]] == newest_first[2:]
    for bad, shown in (("abc", newest_first[:2]), ("-5", newest_first[:2]), ("99999", newest_first[2:])):
        response = client.get(url, {"state": "open", "page": bad})
        assert response.status_code == 200 and [q.pk for q in response.context["queries"]] == shown, bad
