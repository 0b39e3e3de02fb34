"""In the browser: editing a saved record asks for a reason, and the audit history shows who
changed what, from what to what, and why (21 CFR 11.10(e))."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import SiteFactory
from trial.roles import Role

pytestmark = pytest.mark.browser


def test_site_edit_asks_for_a_reason_and_the_audit_history_shows_it(
    make_user, signed_in_page, visit, checkpoint
):
    site = SiteFactory(code="07", name="Old Infirmary")
    admin = make_user(role=Role.ADMINISTRATOR, full_name="Ada Admin", email="ada@example.org")
    page = signed_in_page(admin)

    visit(f"/sites/{site.pk}/edit/", "edit-form")
    name = page.get_by_label("Site name")
    reason = page.get_by_label("Reason for change")
    save = page.get_by_role("button", name="Save changes")
    name.fill("New Infirmary")

    # No reason: the browser does not even send the form.
    save.click()
    assert reason.evaluate("field => field.validity.valueMissing")
    assert page.url.endswith(f"/sites/{site.pk}/edit/")

    # Only spaces get past the browser; the server refuses them and keeps what was typed.
    reason.fill("   ")
    save.click()
    checkpoint("reason-refused")
    expect(reason).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".invalid-feedback")).to_contain_text("This field is required")
    expect(name).to_have_value("New Infirmary")

    reason.fill("Renamed after the hospital merger")
    save.click()
    page.wait_for_url(f"**/sites/{site.pk}/")
    checkpoint("saved")
    expect(page.get_by_role("status")).to_contain_text("Site 07 New Infirmary saved.")

    page.get_by_role("link", name="Audit history").click()
    page.wait_for_url(f"**/audit/trial.site/{site.pk}/")
    checkpoint("audit-history")
    change = page.get_by_role("region").last
    expect(change.get_by_role("heading")).to_contain_text("Changed")
    expect(change.get_by_role("heading")).to_contain_text("Ada Admin <ada@example.org>")
    expect(change).to_contain_text("Reason: Renamed after the hospital merger")
    row = change.get_by_role("row", name="Site name")
    expect(row.get_by_role("cell")).to_have_text(["Old Infirmary", "New Infirmary"])
