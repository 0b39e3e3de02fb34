"""In the browser: a coordinator records the baseline injection visit of a participant with three
lesions - measurements and injections for all three in one table, one save - sees the computed
volumes and doses, then is stopped with a clear message on the right row when a volume is over the
protocol's per-lesion limit. Every page passes axe (WCAG 2.x A/AA)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from lesions import services as lesion_services
from lesions.models import Injection, UltrasoundMeasurement
from participants import safety, services
from participants.visits import site_today
from tests.factories import ELIGIBLE_ANSWERS, SiteFactory, pdf_upload
from trial.protocol import PROTOCOL
from trial.roles import Role

pytestmark = pytest.mark.browser


@pytest.fixture
def study(make_user):
    """A participant enrolled today at site A with three lesions, and the site's coordinator.
    Real dates: the live server runs on the real clock."""
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
    for spec in (
        {
            "label": "L1",
            "anatomical_site": "hand_digit",
            "digit": "index",
            "phalanx": "distal",
            "laterality": "right",
        },
        {"label": "L2", "anatomical_site": "elbow", "laterality": "left"},
        {"label": "L3", "anatomical_site": "knee", "laterality": "right", "is_target": True},
    ):
        lesion_services.lesion_add(
            actor=coordinator, participant=participant, first_seen_on=today - dt.timedelta(days=60), **spec
        )
    return participant, coordinator, today


ROWS = {
    "L1": {"length": "10.0", "width": "8.0", "depth": "5.0", "volume": "0.50", "pain": "3"},
    "L2": {"length": "12.0", "width": "6.0", "depth": "4.0", "volume": "0.40", "pain": "2"},
    "L3": {"length": "20.0", "width": "10.0", "depth": "6.0", "volume": "1.00", "pain": "5"},
}


def test_a_three_lesion_injection_visit_in_one_table(study, signed_in_page, visit, checkpoint):
    participant, coordinator, today = study
    baseline = participant.visits.get(code="W0")
    safety.pregnancy_test_record(
        actor=coordinator, participant=participant, test_type="urine_hcg", test_date=today, result="negative"
    )
    page = signed_in_page(coordinator)
    table_path = reverse("lesions:visit-table", args=[baseline.pk])

    # The participant's lesion registry lists each visit's table.
    visit(reverse("lesions:lesion-list", args=[participant.pk]), "lesion-registry")
    expect(page.get_by_role("table", name="Lesion registry")).to_contain_text("Right index finger")
    registry_link = page.get_by_role("link", name="W0: Baseline: injection 1")
    expect(registry_link).to_have_attribute("href", table_path)
    # A coordinator works through the visit page, which leads to the table.
    visit(reverse("participants:visit-detail", args=[baseline.pk]), "visit-page")
    page.get_by_role("link", name="Open the lesion table").click()
    page.wait_for_url(f"**{table_path}")
    checkpoint("table-empty")

    expect(page.locator("#pregnancy-gate")).to_have_count(0)  # the negative test is recorded
    expect(page.locator("#dose-limits")).to_contain_text("DEMO VALUES")
    table = page.get_by_role("table", name="Lesions of")
    expect(table.get_by_role("row")).to_have_count(2 + 3 + 1)  # two header rows, 3 lesions, total

    # Operator and device once for the whole table.
    page.get_by_label("Operator for every row").fill("Sam Sonographer")
    page.get_by_label("Ultrasound device for every row").fill("Demo US-1")
    page.get_by_role("button", name="Copy into every row").click()
    expect(page.get_by_label("L3 operator", exact=True)).to_have_value("Sam Sonographer")

    for label, row in ROWS.items():
        page.get_by_label(f"{label} length (mm)", exact=True).fill(row["length"])
        page.get_by_label(f"{label} width (mm)", exact=True).fill(row["width"])
        page.get_by_label(f"{label} depth (mm)", exact=True).fill(row["depth"])
        page.get_by_label(f"{label} Doppler signal", exact=True).select_option("minimal")
        expect(page.get_by_label(f"{label} STS concentration (mg/mL)")).to_have_value("250")
        page.get_by_label(f"{label} volume injected (mL)", exact=True).fill(row["volume"])
        page.get_by_label(f"{label} local anaesthetic mixed in", exact=True).check()
        page.get_by_label(f"{label} needle gauge", exact=True).select_option("27")
        page.get_by_label(f"{label} ultrasound guidance confirmed", exact=True).check()
        page.get_by_label(f"{label} immediate pain (0-10)", exact=True).fill(row["pain"])
    # The running total while typing: (0.5 + 0.4 + 1.0) mL x 250 mg/mL.
    expect(page.locator("#entered-total")).to_contain_text("475.00 mg of at most 2500 mg")

    page.get_by_role("button", name="Save the table").click()
    page.wait_for_url(f"**{table_path}")
    checkpoint("saved")
    expect(page.get_by_role("status").first).to_contain_text("3 measurement(s) and 3 injection(s)")
    rows = {label: table.get_by_role("row", name=label).first for label in ROWS}
    # pi/6 x L x W x D, and concentration x volume: computed, shown read-only.
    expect(rows["L1"].locator("[data-computed=volume]")).to_have_text("209.4")
    expect(rows["L2"].locator("[data-computed=volume]")).to_have_text("150.8")
    expect(rows["L3"].locator("[data-computed=volume]")).to_have_text("628.3")
    expect(rows["L1"].locator("[data-computed=dose]")).to_have_text("125.00")
    expect(rows["L3"].locator("[data-computed=dose]")).to_have_text("250.00")
    expect(page.locator("#session-total")).to_contain_text("Saved: 475.00 mg STS of at most 2500 mg")
    assert UltrasoundMeasurement.objects.filter(visit=baseline).count() == 3

    # Over the per-lesion volume limit: refused, on L2's row, with what was typed kept.
    limit = PROTOCOL.dosing.max_volume_per_lesion_ml
    page.get_by_label("L2 volume injected (mL)", exact=True).fill("2.5")
    page.get_by_label("Reason for change").fill("Second syringe given into L2")
    page.get_by_role("button", name="Save the table").click()
    page.wait_for_load_state("load")
    checkpoint("over-the-limit")
    expect(page.locator("#error-summary")).to_contain_text("L2")
    problem = page.locator("#rows-1-errors")
    expect(problem).to_contain_text(f"2.5 mL is more than the protocol's limit of {limit} mL per lesion")
    volume = page.get_by_label("L2 volume injected (mL)", exact=True)
    expect(volume).to_have_value("2.5")
    expect(volume).to_have_attribute("aria-describedby", "rows-1-errors")
    expect(page.get_by_label("Reason for change")).to_have_value("Second syringe given into L2")
    assert [str(i.volume_ml) for i in Injection.objects.filter(visit=baseline).order_by("lesion__label")] == [
        "0.50",
        "0.40",
        "1.00",
    ]

    # The registry now shows the baseline of each lesion and of the participant's total.
    visit(reverse("lesions:lesion-list", args=[participant.pk]), "registry-with-baseline")
    per_lesion = page.get_by_role("table", name="Per lesion")
    expect(per_lesion.get_by_role("row", name="L3")).to_contain_text("628.3")
    expect(page.get_by_role("table", name="Participant total")).to_contain_text("20.0")


def test_adding_a_finger_lesion_asks_only_what_applies(study, signed_in_page, visit, checkpoint):
    participant, coordinator, today = study
    page = signed_in_page(coordinator)
    visit(reverse("lesions:lesion-add", args=[participant.pk]), "lesion-add")
    expect(page.get_by_label("Label")).to_have_value("L4")
    digit = page.get_by_label("Digit")
    expect(digit).to_be_hidden()  # only for a finger or thumb

    page.get_by_label("Anatomical site").select_option("hand_digit")
    expect(digit).to_be_visible()
    digit.select_option("thumb")
    expect(page.get_by_label("Phalanx").locator("option[value=middle]")).to_be_disabled()
    page.get_by_label("Side").select_option("left")
    page.get_by_role("button", name="Add lesion").click()
    page.wait_for_load_state("load")
    checkpoint("phalanx-missing")
    expect(page.locator("#form-errors")).to_contain_text("Choose the phalanx")

    page.get_by_label("Phalanx").select_option("distal")
    page.get_by_role("button", name="Add lesion").click()
    page.wait_for_url(f"**{reverse('lesions:lesion-list', args=[participant.pk])}")
    checkpoint("added")
    expect(page.get_by_role("table", name="Lesion registry")).to_contain_text("Left thumb distal phalanx")
