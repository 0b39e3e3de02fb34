"""In the browser, on a phone: a patient opens the HAQ-DI link from the e-mail, answers half the
categories, closes the page, opens the same link again, lands where they stopped, finishes,
reviews, submits and is thanked; the link then says "already completed". A slider question
(calcinosis activity) answers nothing until it is moved. Every page passes axe (WCAG 2.x A/AA)
and its answers, buttons and links are at least 44 x 44 CSS pixels.

The live server runs on the real clock, so the participant is enrolled with a baseline two days
ago: the baseline questionnaires opened then (09:00 in the site's zone) and are open now.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from playwright.sync_api import Browser, BrowserContext, Page, expect

from participants import services
from participants.visits import site_today
from pro_measures import invitations, reminders, views
from pro_measures.instruments import INSTRUMENTS
from pro_measures.models import Invitation, InvitationStatus, Score
from tests.browser.conftest import SCREENSHOTS, _slug, assert_accessible, assert_styled
from tests.factories import ELIGIBLE_ANSWERS, SiteFactory, pdf_upload
from trial.roles import Role

pytestmark = pytest.mark.browser

HAQ = INSTRUMENTS["haq_di"]
PHONE = {"width": 390, "height": 844}
TOUCH_TARGET = 44  # CSS px (WCAG 2.5.5)


@pytest.fixture
def phone(browser: Browser, live_server, transactional_db, asset_failures) -> Iterator[BrowserContext]:
    """A phone's browser: small portrait screen, touch, mobile viewport. Its tabs share cookies."""
    context = browser.new_context(
        base_url=live_server.url,
        viewport=PHONE,
        device_scale_factor=3,
        is_mobile=True,
        has_touch=True,
    )
    context.set_default_timeout(10_000)
    context.on("response", asset_failures.on_response)
    context.on("requestfailed", asset_failures.on_request_failed)
    yield context
    context.close()


@pytest.fixture
def check(asset_failures, request) -> Callable[[Page, str], None]:
    """`check(page, step)`: like the suite's `checkpoint` (styled, axe, screenshot), for any tab of
    the phone, and every answer, button and link is big enough to tap."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test_name = _slug(request.node.name)
    for old in SCREENSHOTS.glob(f"{test_name}-*.png"):
        old.unlink()
    count = 0

    def run(page: Page, step: str) -> None:
        nonlocal count
        page.wait_for_load_state("load")
        count += 1
        page.screenshot(path=SCREENSHOTS / f"{test_name}-{count:02d}-{_slug(step)}.png", full_page=True)
        assert_styled(page, asset_failures.items)
        assert_accessible(page, step)
        assert_touch_targets(page)

    return run


@pytest.fixture
def emailed_links(make_user) -> dict[str, str]:
    """A participant with a baseline two days ago, the baseline invitations e-mailed: the path of
    each e-mail's link, by questionnaire code."""
    site = SiteFactory(code="A1", name="Site A", contact_phone="+1 212 555 0100")
    coordinator = make_user(role=Role.COORDINATOR, sites=[site], full_name="Casey Coordinator")
    investigator = make_user(role=Role.INVESTIGATOR, sites=[site], full_name="Ira Investigator")
    today = site_today(site)
    baseline = today - dt.timedelta(days=2)
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
        screening_date=baseline,
    )
    answers = {
        **ELIGIBLE_ANSWERS,
        "calcinosis_evidence_date": baseline - dt.timedelta(days=30),
        "pregnancy_test_date": baseline,
    }
    services.eligibility_record(actor=coordinator, screening=screening, answers=answers)
    services.eligibility_confirm(actor=investigator, screening=screening)
    services.consent_record(
        actor=coordinator,
        screening=screening,
        document=document,
        consented_at=timezone.now() - dt.timedelta(days=2),
        participant_signature="Jane Doe",
        attestation=True,
        copy_given=True,
    )
    participant = services.participant_enroll(
        actor=coordinator, screening=screening, enrolled_on=baseline, email="jane@example.org"
    )
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    reminders.reminders_send_due()
    links = {}
    for message in mail.outbox:
        path = re.search(r"https?://[^/\s]+(/q/([A-Za-z0-9_-]+)/)", message.body)
        code = invitations.invitation_for_token(path.group(2)).instrument_code
        links[code] = path.group(1)
    assert set(links) == set(INSTRUMENTS)
    return links


def assert_touch_targets(page: Page) -> None:
    """Every answer, button and link in the page's main part and footer is big enough to tap."""
    small = page.evaluate(
        """(minimum) => Array.from(document.querySelectorAll(
               'main label.option, main label.nrs-option, main button, main a, main input[type=number],'
               + ' main input[type=range], footer a'))
             .filter((el) => el.offsetParent !== null)
             .map((el) => [el.textContent.trim().slice(0, 40), el.getBoundingClientRect()])
             .filter(([, box]) => box.height < minimum || box.width < minimum)
             .map(([text, box]) => `${text}: ${Math.round(box.width)}x${Math.round(box.height)}`)""",
        TOUCH_TARGET,
    )
    assert not small, f"touch targets under {TOUCH_TARGET}px on {page.url}: {small}"


def answer_category(page: Page, category_index: int, *, skip: str = "") -> None:
    """Answer one HAQ-DI category page by tapping: its activities (leaving out `skip`), and no
    aids or help."""
    section = HAQ.sections[category_index]
    for n, item in enumerate(section.items):
        if item.link_id == skip:
            continue
        question = page.get_by_role("group", name=str(item.text))
        if item.link_id.endswith(("_aids", "_help")):
            question.get_by_label("No").tap()
        else:
            question.get_by_label(["Without any difficulty", "With some difficulty"][n % 2]).tap()


def test_a_patient_completes_haq_di_on_a_phone_leaving_half_way_and_resuming(phone, emailed_links, check):
    link = emailed_links["haq_di"]
    page = phone.new_page()
    page.goto(link)
    check(page, "start")
    expect(page.get_by_role("heading", level=1)).to_have_text(str(HAQ.title))
    expect(page.get_by_text("There are 8 pages")).to_be_visible()
    expect(page.get_by_text("Your answers are saved as you go")).to_be_visible()
    expect(page.get_by_test_id("site-contact")).to_contain_text("+1 212 555 0100")
    page.get_by_role("link", name="Start").tap()

    # Four of the eight categories, then the page is closed.
    for index in range(4):
        expect(page.get_by_test_id("progress")).to_have_text(f"Page {index + 1} of 8")
        expect(page.get_by_role("progressbar", name=f"Page {index + 1} of 8")).to_be_visible()
        expect(page.get_by_role("heading", level=1)).to_have_text(str(HAQ.sections[index].title))
        answer_category(page, index)
        if index == 0:
            check(page, "page-1-answered")
        page.get_by_role("button", name="Next").tap()
    expect(page.get_by_test_id("progress")).to_have_text("Page 5 of 8")
    page.close()

    # Later: the same link from the e-mail, in a new tab.
    page = phone.new_page()
    page.goto(link)
    expect(page.get_by_test_id("progress")).to_have_text("Page 5 of 8")
    expect(page.get_by_role("status")).to_contain_text("Welcome back")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hygiene")
    check(page, "resumed")
    # The answers given before are kept: the page before shows them.
    page.get_by_role("button", name="Back").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Walking")
    walking_1 = page.get_by_role("group", name=str(HAQ.sections[3].items[0].text))
    expect(walking_1.get_by_label("Without any difficulty")).to_be_checked()
    page.get_by_role("button", name="Next").tap()

    last_question = HAQ.sections[7].items[2]
    for index in range(4, 8):
        expect(page.get_by_test_id("progress")).to_have_text(f"Page {index + 1} of 8")
        answer_category(page, index, skip=last_question.link_id)
        page.get_by_role("button", name="Next: check your answers" if index == 7 else "Next").tap()

    # The review names the question left out; its link leads to it, and back to the review.
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    missing = page.get_by_test_id("missing")
    expect(missing).to_contain_text("1 question is not answered yet")
    expect(missing.get_by_role("link")).to_have_text(str(last_question.text))
    check(page, "review-missing")
    missing.get_by_role("link").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Activities")
    page.get_by_role("group", name=str(last_question.text)).get_by_label("Unable to do").tap()
    page.get_by_role("button", name="Save and go back to the review").tap()

    expect(page.get_by_role("heading", level=1)).to_have_text("Check your answers")
    expect(page.get_by_text("Every question is answered")).to_be_visible()
    expect(page.locator("[data-item=activities_3]")).to_contain_text("Unable to do")
    check(page, "review-complete")
    page.get_by_role("button", name="Send my answers").tap()

    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you")
    check(page, "thanks")
    haq = Invitation.objects.get(instrument_code="haq_di")
    assert haq.status == InvitationStatus.COMPLETED
    # Categories score 1 (some difficulty, no aids or help) but activities 3 ("unable to do"): 10 / 8.
    assert Score.objects.get(response__invitation=haq, name="haq_di").value == Decimal("1.250")

    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text("This questionnaire is already completed")
    check(page, "already-completed")


def test_an_untouched_slider_is_no_answer_and_a_tap_on_it_is(phone, emailed_links, check):
    page = phone.new_page()
    page.goto(emailed_links["activity_vas"])
    page.get_by_role("link", name="Start").tap()
    slider = page.get_by_role("slider", name="Move the slider to your answer")
    expect(slider).to_be_visible()
    expect(slider).to_have_attribute("aria-valuetext", re.compile("^Not answered yet"))
    expect(page.get_by_role("spinbutton")).to_be_hidden()  # the no-JavaScript number input
    check(page, "slider-untouched")
    page.get_by_role("button", name="Next: check your answers").tap()
    expect(page.get_by_test_id("missing")).to_contain_text("1 question is not answered yet")

    page.get_by_role("link", name="Change").tap()
    box = slider.bounding_box()
    slider.tap(position={"x": box["width"] * 0.7, "y": box["height"] / 2})
    value = int(slider.input_value())
    assert 55 <= value <= 85
    expect(page.get_by_text(f"Your answer: {value} (from 0 to 100)")).to_be_visible()
    expect(slider).to_have_attribute(
        "aria-valuetext", re.compile(rf"^{value}, on a scale from 0, Not active")
    )
    check(page, "slider-moved")
    page.get_by_role("button", name="Save and go back to the review").tap()
    expect(page.locator("[data-item=activity]")).to_contain_text(f"{value} (from 0, Not active at all")
    page.get_by_role("button", name="Send my answers").tap()
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you")
    assert Score.objects.get(name="activity_vas").value == value


@pytest.fixture
def live_server_address_forgotten():
    """The live server sees every tab at 127.0.0.1: forget its unknown links afterwards, so that
    test runs on this machine never add up to a block."""
    yield
    cache.delete(views._bad_links_key(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1")))


def test_the_pain_scale_on_a_phone_and_an_unknown_link(
    phone, emailed_links, check, live_server_address_forgotten
):
    page = phone.new_page()
    page.goto(emailed_links["pain_nrs"])
    page.get_by_role("link", name="Start").tap()
    scale = page.get_by_role("group", name="How much pain did your calcinosis cause you over the past week?")
    expect(scale.get_by_text("0 = No pain")).to_be_visible()
    expect(scale.get_by_text("10 = Worst pain imaginable")).to_be_visible()
    # 0 to 10 do not fit one row of a phone: they wrap, each still a thumb's width.
    zero, ten = scale.get_by_label("0: No pain"), scale.get_by_label("10: Worst pain imaginable")
    assert ten.bounding_box()["y"] > zero.bounding_box()["y"]
    scale.get_by_label("7", exact=True).tap()
    expect(scale.get_by_label("7", exact=True)).to_be_checked()
    check(page, "pain-scale")
    page.get_by_role("button", name="Next: check your answers").tap()
    expect(page.locator("[data-item=pain]")).to_contain_text(
        "7 (from 0, No pain, to 10, Worst pain imaginable)"
    )

    page.goto("/q/" + "A" * 43 + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not open this questionnaire")
    expect(page.get_by_test_id("site-contact")).to_have_count(0)
    check(page, "unknown-link")
