"""In the browser: a monitor verifies one form of a visit and single fields of a record; a data
manager locks the visit with a reason; the coordinator finds its pages read-only, saying who
locked it, when and why. Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.test_visit_pages import study  # noqa: F401 - shared fixture
from trial.data_management.models import DataLock, Verification
from trial.roles import Role

pytestmark = pytest.mark.browser


def test_monitor_verifies_a_form_and_fields_then_a_locked_visit_is_read_only(
    study,  # noqa: F811
    make_user,
    page,
    signed_in_page,
    visit,
    checkpoint,
):
    participant, coordinator, _investigator = study
    baseline = participant.visits.get(code="W0")
    monitor = make_user(role=Role.MONITOR, sites=[participant.site], full_name="Mona Monitor")
    data_manager = make_user(role=Role.DATA_MANAGER, full_name="Dana Datamanager")
    verification_url = reverse("data_management:visit-verification", args=[baseline.pk])

    # The monitor verifies the visit form in one action, then two fields of the record.
    signed_in_page(monitor)
    visit(verification_url, "visit-forms")
    row = page.locator('tr[data-form="participants.visit"]')
    expect(row).to_contain_text("Not verified")
    row.get_by_role("button", name="Verify this form").click()
    checkpoint("form-verified")
    expect(page.locator('tr[data-form="participants.visit"]')).to_have_attribute("data-cleared", "false")
    page.locator('tr[data-form="participants.visit"]').get_by_role("link").first.click()
    checkpoint("record-page")
    page.get_by_label("Target date").check()
    page.get_by_label("Window opens").check()
    page.get_by_role("button", name="Mark the chosen fields verified").click()
    checkpoint("fields-verified")
    expect(page.locator('tr[data-field="target_date"]')).to_contain_text("Mona Monitor")
    assert Verification.objects.filter(field_names=["target_date", "window_opens"]).exists()

    # The data manager locks the visit, saying why.
    page.context.clear_cookies()
    signed_in_page(data_manager)
    visit(verification_url, "data-manager")
    page.get_by_label("Why lock").fill("Interim analysis")
    page.get_by_role("button", name="Lock this visit").click()
    checkpoint("locked")
    assert DataLock.objects.get().reason == "Interim analysis"

    # The coordinator's pages say so and offer no edits.
    page.context.clear_cookies()
    signed_in_page(coordinator)
    visit(baseline.get_absolute_url(), "visit-page-locked")
    expect(page.get_by_test_id("lock-badge")).to_contain_text("Locked by Dana Datamanager")
    expect(page.get_by_test_id("lock-badge")).to_contain_text("Interim analysis")
    expect(page.get_by_role("button", name="Complete visit")).to_have_count(0)
    visit(reverse("participants:visit-complete", args=[baseline.pk]), "complete-page-locked")
    expect(page.get_by_test_id("locked-message")).to_contain_text("Interim analysis")
    expect(page.get_by_role("button", name="Complete visit")).to_have_count(0)
