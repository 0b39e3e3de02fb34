"""In the browser: a coordinator opens today's list, goes to the baseline visit, records the
pregnancy test, answers the AE review with "yes", reports a serious adverse event (the seriousness
criteria appear when "Serious" is ticked; a missing criterion is named), completes the visit and
reads the timeline. Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from participants import services
from participants.models import AdverseEvent, VisitStatus
from participants.visits import site_today
from tests.factories import ELIGIBLE_ANSWERS, SiteFactory, pdf_upload
from trial.roles import Role

pytestmark = pytest.mark.browser


@pytest.fixture
def study(make_user):
    """A participant enrolled today at site A (real clock: the live server runs on it)."""
    site = SiteFactory(code="A1", name="Site A")
    coordinator = make_user(role=Role.COORDINATOR, sites=[site], full_name="Casey Coordinator")
    investigator = make_user(role=Role.INVESTIGATOR, sites=[site], full_name="Ira Investigator")
    today = site_today(site)
    document = services.consent_document_add(
        actor=investigator,
        version="1.0",
        language="en",
        title="Participant information and consent",
        approved_on=today - dt.timedelta(days=300),
        effective_from=today - dt.timedelta(days=200),
        document=pdf_upload(),
    )
    screening = services.screening_create(
        actor=coordinator,
        site=site,
        first_name="Jane",
        last_name="Doe",
        date_of_birth=dt.date(1970, 5, 17),
        sex="female",
        screening_date=today,
    )
    answers = {
        **ELIGIBLE_ANSWERS,
        "calcinosis_evidence_date": today - dt.timedelta(days=30),
        "pregnancy_test_date": today,
    }
    services.eligibility_record(actor=coordinator, screening=screening, answers=answers)
    services.eligibility_confirm(actor=investigator, screening=screening)
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=document,
        consented_at=timezone.now(),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    participant = services.participant_enroll(actor=coordinator, screening=screening, enrolled_on=today)
    return participant, coordinator, investigator


def test_a_visit_from_todays_list_to_a_serious_adverse_event(
    study, signed_in_page, visit, checkpoint, celery_eager
):
    participant, coordinator, investigator = study
    baseline = participant.visits.get(code="W0")
    page = signed_in_page(coordinator)

    visit(reverse("participants:today"), "today")
    due = page.get_by_role("region", name="Due today")
    due.get_by_role("link", name="W0: Baseline: injection 1").click()
    page.wait_for_url(f"**{baseline.get_absolute_url()}")
    checkpoint("visit")
    expect(page.get_by_test_id("visit-state")).to_have_text("Due (window open)")
    expect(page.get_by_test_id("dosing-limits")).to_contain_text("DEMO VALUES")

    # 1. Pregnancy test.
    page.get_by_role("link", name="Record the pregnancy test").click()
    checkpoint("pregnancy-test")
    page.get_by_label("Urine hCG").check()
    page.get_by_label("Negative").check()
    page.get_by_role("button", name="Save the test").click()
    expect(page.get_by_role("status").first).to_contain_text("Pregnancy test recorded: Negative")
    expect(page.locator("[data-form=pregnancy_test]")).to_contain_text("Done")

    # 2. AE review: yes leads straight to the AE form with this visit chosen.
    page.get_by_role("link", name="Review adverse events").click()
    checkpoint("ae-review")
    page.get_by_label("Yes").check()
    page.get_by_role("button", name="Save the review").click()
    expect(page.get_by_label("Reported at visit")).to_have_value(str(baseline.pk))
    criteria = page.get_by_role("group", name="Seriousness criteria")
    expect(criteria).to_be_hidden()
    checkpoint("ae-form")
    page.get_by_role("combobox", name="Event").select_option("injection_site_infection")
    page.get_by_label("Grade 3: severe or medically significant").check()
    page.get_by_label("Serious", exact=True).check()
    expect(criteria).to_be_visible()
    page.get_by_role("group", name="Related to STS").get_by_label("Possible").check()
    page.get_by_role("group", name="Related to the injection procedure").get_by_label("Probable").check()
    page.get_by_label("Onset date").fill(site_today(participant.site).isoformat())
    page.get_by_label("Outcome").select_option("recovering")
    page.get_by_label("Action taken").select_option("delayed")
    page.get_by_role("button", name="Report the event").click()
    # Serious without a criterion: the summary names the missing answer; the criteria stay shown.
    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("A serious event needs at least one seriousness criterion")
    expect(criteria).to_be_visible()
    checkpoint("ae-form-errors")
    criteria.get_by_label("Requires or prolongs hospitalisation").check()
    page.get_by_role("button", name="Report the event").click()
    page.wait_for_url(f"**{baseline.get_absolute_url()}")
    expect(page.get_by_role("status").first).to_contain_text("Serious adverse event recorded")
    expect(page.get_by_role("link", name="Injection site infection")).to_be_visible()
    assert AdverseEvent.objects.get().serious
    assert [m.to for m in mail.outbox] == [[investigator.email]]

    # 3. Complete the visit with today's date (offered).
    page.get_by_role("button", name="Complete visit").click()
    expect(page.get_by_test_id("visit-state")).to_have_text("Completed")
    baseline.refresh_from_db()
    assert baseline.status == VisitStatus.COMPLETED
    checkpoint("visit-completed")

    page.get_by_role("link", name="Visit timeline").click()
    checkpoint("timeline")
    w0 = page.get_by_role("table", name="Visits, with the forms each expects").locator("tr[data-visit=W0]")
    expect(w0).to_contain_text("Completed")
    expect(w0.locator("[data-form=ae_review]")).to_contain_text("new events reported")
    expect(w0.locator("[data-form=measurements]")).to_contain_text("Missing")

    visit(reverse("participants:adverse-event-list", args=[participant.pk]), "adverse-events")
    visit(reverse("participants:deviation-create"), "deviation-form")
    visit(reverse("participants:deviation-list"), "deviations")
