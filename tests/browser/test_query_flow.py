"""In the browser: a monitor raises a query on a completed visit's date from the visit page; the
coordinator finds it in the query list and answers; the monitor reads the answer and closes it.
Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from participants import visits
from participants.visits import site_today
from tests.browser.test_visit_pages import study  # noqa: F401 - shared fixture
from trial.data_management.models import Query, QueryState
from trial.roles import Role

pytestmark = pytest.mark.browser


def test_monitor_raises_coordinator_answers_monitor_closes(
    study,  # noqa: F811
    make_user,
    page,
    signed_in_page,
    visit,
    checkpoint,
):
    participant, coordinator, _investigator = study
    baseline = participant.visits.get(code="W0")
    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=site_today(participant.site))
    monitor = make_user(role=Role.MONITOR, sites=[participant.site], full_name="Mona Monitor")

    # The monitor raises the query from the visit page.
    signed_in_page(monitor)
    visit(baseline.get_absolute_url(), "visit-page-no-queries")
    expect(page.get_by_test_id("query-badge")).to_contain_text("No open queries")
    page.get_by_role("link", name="Raise a query").click()
    checkpoint("raise-form")
    page.get_by_label("Field").select_option(label="Visit date")
    page.locator("#id_text").fill("The clinic log says the visit was the day before.")
    page.get_by_label("Assign to").select_option(label=coordinator.audit_name)
    page.get_by_role("button", name="Raise query").click()
    checkpoint("raised")
    expect(page.get_by_test_id("query-state")).to_have_text("Open")
    query = Query.objects.get()

    visit(baseline.get_absolute_url(), "visit-page-one-query")
    expect(page.get_by_test_id("query-badge")).to_contain_text("1 open query")

    # The coordinator finds it in the list and answers.
    page.context.clear_cookies()
    signed_in_page(coordinator)
    visit(reverse("data_management:query-list"), "coordinator-list")
    row = page.get_by_test_id("query-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Visit date")
    row.get_by_role("link", name=str(query)).click()
    checkpoint("coordinator-query")
    expect(page.get_by_role("button", name="Close query")).to_have_count(0)
    page.get_by_role("textbox", name="Answer").fill(
        "Checked the source: the date is right, the log was wrong."
    )
    page.get_by_role("button", name="Send answer").click()
    checkpoint("answered")
    expect(page.get_by_test_id("query-state")).to_have_text("Answered")

    # The monitor reads the answer and closes the query.
    page.context.clear_cookies()
    signed_in_page(monitor)
    visit(query.get_absolute_url(), "monitor-reads-answer")
    expect(page.get_by_test_id("query-answer")).to_contain_text("the log was wrong")
    page.get_by_role("button", name="Close query").click()
    checkpoint("closed")
    expect(page.get_by_test_id("query-state")).to_have_text("Closed")
    query.refresh_from_db()
    assert query.state == QueryState.CLOSED and query.answered_by == coordinator

    visit(baseline.get_absolute_url(), "visit-page-closed")
    expect(page.get_by_test_id("query-badge")).to_contain_text("No open queries")


def test_query_list_pages_through_an_accessible_pagination_control(
    study,  # noqa: F811
    make_user,
    page,
    signed_in_page,
    visit,
    checkpoint,
    monkeypatch,
):
    from trial.data_management import services
    from trial.data_management import views as query_views

    monkeypatch.setattr(query_views, "QUERY_PAGE_SIZE", 2)
    participant, coordinator, _investigator = study
    baseline = participant.visits.get(code="W0")
    visits.visit_complete(actor=coordinator, visit=baseline, visit_date=site_today(participant.site))
    monitor = make_user(role=Role.MONITOR, sites=[participant.site], full_name="Mona Monitor")
    for number in range(3):
        services.query_raise(actor=monitor, record=baseline, field_name="visit_date", text=f"Check {number}")

    signed_in_page(monitor)
    visit(reverse("data_management:query-list") + "?state=all", "query-list-page-1")
    expect(page.get_by_test_id("query-row")).to_have_count(2)
    pages = page.get_by_role("navigation", name="Pages of queries")
    expect(pages.get_by_role("link", name="Page 1")).to_have_attribute("aria-current", "page")
    pages.get_by_role("link", name="Next").click()
    checkpoint("query-list-page-2")
    expect(page.get_by_test_id("query-row")).to_have_count(1)
    expect(page.get_by_label("State")).to_have_value("all")
    expect(
        page.get_by_role("navigation", name="Pages of queries").get_by_role("link", name="Page 2")
    ).to_have_attribute("aria-current", "page")
