"""In the browser: a coordinator opens a participant's questionnaires, enters a paper pain score,
revokes the hand scale with a reason, filters the site-wide list and reads the score on the
timeline. Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from pro_measures import invitations
from pro_measures.models import Invitation, InvitationStatus, Response
from tests.browser.test_visit_pages import study  # noqa: F401 - the enrolled participant

pytestmark = pytest.mark.browser


def test_coordinator_enters_a_paper_questionnaire_and_revokes_another(
    study,  # noqa: F811
    signed_in_page,
    visit,
    checkpoint,
):
    participant, coordinator, _investigator = study
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    page = signed_in_page(coordinator)

    visit(reverse("pro_measures:invitation-list", args=[participant.pk]), "questionnaires")
    page.get_by_role("link", name="Enter a paper questionnaire (Calcinosis pain, W0)").click()
    checkpoint("paper-form")
    page.get_by_role("group", name="How much pain did your calcinosis cause you").get_by_label(
        "6", exact=True
    ).check()
    page.get_by_role("button", name="Save the paper questionnaire").click()
    expect(page.get_by_role("status").first).to_contain_text("Calcinosis pain (0-10): 6")
    checkpoint("paper-saved")
    pain = Invitation.objects.get(participant=participant, instrument_code="pain_nrs")
    assert Response.objects.get(invitation=pain).source == "paper"

    page.get_by_role("link", name="Revoke… (Cochin Hand Function Scale, W0)").click()
    page.get_by_role("button", name="Revoke the questionnaire").click()
    expect(page.get_by_role("alert")).to_contain_text("This field is required")
    checkpoint("revoke-needs-a-reason")
    page.get_by_label("Why is this questionnaire revoked?").fill("hand surgery last week")
    page.get_by_role("button", name="Revoke the questionnaire").click()
    cochin = Invitation.objects.get(participant=participant, instrument_code="cochin")
    expect(page.locator(f"#invitation-{cochin.pk}")).to_contain_text("hand surgery last week")
    checkpoint("revoked")
    cochin.refresh_from_db()
    assert cochin.status == InvitationStatus.REVOKED

    page.get_by_role("link", name="Questionnaires", exact=True).click()
    page.get_by_label("State").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    table = page.get_by_role("table", name="Questionnaire invitations, newest first")
    expect(table.locator("tbody tr")).to_have_count(1)
    checkpoint("overview-completed")

    visit(reverse("participant-timeline", args=[participant.pk]), "timeline")
    scores = page.get_by_role("table", name="Questionnaire scores per visit, with the absolute change from baseline")
    expect(scores).to_contain_text("Calcinosis pain (0-10)")
    expect(page.locator("tr[data-visit=W0] [data-questionnaire=cochin]")).to_contain_text("Revoked")
