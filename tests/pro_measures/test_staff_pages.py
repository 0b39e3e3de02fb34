"""The coordinators' questionnaire pages as a coordinator, a monitor and another site's staff use
them: a participant's invitations with states, times and reminders; resend; revoke; paper entry;
the site-wide list with its filters."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from participants import visits as visit_services
from pro_measures import invitations, reminders
from pro_measures.models import Invitation, InvitationStatus, Reminder, ReminderState, Response
from tests.participants.conftest import TODAY
from tests.pro_measures.answers import HAQ_WORKED, as_post, complete_answers, invite
from trial.audit import event_model_for
from trial.roles import Role

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=UTC)  # 10:00 in New York, the window opened at 09:00


@pytest.fixture
def planned(participant):
    invitations.invitations_plan_for_participant(participant_id=participant.pk)
    return {i.instrument_code: i for i in Invitation.objects.filter(participant=participant)}


@pytest.fixture
def monitor(make_user, site_a):
    return make_user(role=Role.MONITOR, sites=[site_a])


@pytest.fixture
def coordinator_b(make_user, site_b):
    return make_user(role=Role.COORDINATOR, sites=[site_b], email="coordinator-b@example.org")


def text(response) -> str:
    assert response.status_code == 200, response.status_code
    return re.sub(r"\s+", " ", response.content.decode())


def row_of(page: str, invitation: Invitation) -> str:
    return page.split(f'id="invitation-{invitation.pk}"')[1].split("</tr>")[0]


def list_url(participant) -> str:
    return reverse("pro_measures:invitation-list", args=[participant.pk])


# --- A participant's questionnaires ------------------------------------------------------------------


def test_participant_page_shows_each_invitation_with_state_times_and_reminders(
    participant, planned, coordinator, signed_in
):
    reminders.reminders_send_due(now=NOW)
    page = text(signed_in(coordinator).get(list_url(participant)))
    assert page.count('data-state="sent"') == 6
    haq = row_of(page, planned["haq_di"])
    assert "Health Assessment Questionnaire Disability Index" in haq and "version 1.0" in haq
    # Times in the site's zone (New York, EST): opened 09:00, e-mailed 10:00, valid to 10 Nov.
    assert "Times are shown in the time zone of A1 Site A (America/New_York)" in page
    assert re.search(r"Opens</dt> <dd[^>]*><time[^>]*>2026-11-03 09:00 EST", haq)
    assert re.search(r"E-mailed</dt> <dd[^>]*><time[^>]*>2026-11-03 10:00 EST", haq)
    assert re.search(r"Valid until</dt> <dd[^>]*><time[^>]*>2026-11-10 23:59 EST", haq)
    # The reminders: the invitation sent, the later ones pending.
    assert re.search(r'data-reminder-state="sent">Invitation, due <time[^>]*>2026-11-03 09:00 EST', haq)
    assert re.search(r'data-reminder-state="pending">Reminder, due <time[^>]*>2026-11-06 09:00 EST', haq)
    assert reverse("pro_measures:invitation-resend", args=[planned["haq_di"].pk]) in haq
    assert reverse("pro_measures:invitation-revoke", args=[planned["haq_di"].pk]) in haq
    assert reverse("pro_measures:invitation-paper", args=[planned["haq_di"].pk]) in haq


def test_timeline_links_to_the_questionnaires_page(participant, coordinator, signed_in):
    page = text(signed_in(coordinator).get(reverse("participant-timeline", args=[participant.pk])))
    assert list_url(participant) in page


def test_resend_creates_a_reminder_due_now_that_the_next_tick_sends(
    participant, planned, coordinator, signed_in
):
    reminders.reminders_send_due(now=NOW)
    sent_before = len(mail.outbox)
    pain = planned["pain_nrs"]
    with time_machine.travel(dt.datetime(2026, 11, 4, 17, 30, tzinfo=UTC), tick=False):
        response = signed_in(coordinator).post(reverse("pro_measures:invitation-resend", args=[pain.pk]))
        assert response.status_code == 302
        assert response["Location"] == f"{list_url(participant)}#invitation-{pain.pk}"
        resend = Reminder.objects.get(invitation=pain, sequence__gte=100)
        assert resend.due_at == dt.datetime(2026, 11, 4, 17, 30, tzinfo=UTC)
        assert resend.state == ReminderState.PENDING
        page = text(signed_in(coordinator).get(list_url(participant)))
    assert "will be e-mailed again" in page
    assert "Sent again by staff, due <time" in row_of(page, pain)
    assert reminders.reminders_send_due(now=dt.datetime(2026, 11, 4, 17, 31, tzinfo=UTC)) == 1
    assert len(mail.outbox) == sent_before + 1 and mail.outbox[-1].to == ["jane@example.org"]


def test_without_an_e_mail_address_paper_entry_is_offered_instead_of_resending(
    participant, planned, coordinator, signed_in
):
    type(participant).objects.filter(pk=participant.pk).update(email="")
    page = text(signed_in(coordinator).get(list_url(participant)))
    assert "There is no e-mail address for this participant" in page
    assert "invitation-resend" not in page and page.count("Enter a paper questionnaire") == 6


def test_revoke_needs_a_reason_then_cancels_pending_reminders_and_shows_the_state(
    participant, planned, coordinator, signed_in
):
    client = signed_in(coordinator)
    cochin = planned["cochin"]
    url = reverse("pro_measures:invitation-revoke", args=[cochin.pk])
    assert "Why is this questionnaire revoked?" in text(client.get(url))
    response = client.post(url, {"reason": "   "})
    assert 'role="alert"' in text(response)
    cochin.refresh_from_db()
    assert cochin.status == InvitationStatus.SCHEDULED
    assert cochin.reminders.filter(state=ReminderState.PENDING).count() >= 3

    response = client.post(url, {"reason": "patient had hand surgery; cannot fill in the hand scale"})
    assert response.status_code == 302
    cochin.refresh_from_db()
    assert cochin.status == InvitationStatus.REVOKED
    assert not cochin.reminders.filter(state=ReminderState.PENDING).exists()
    assert set(cochin.reminders.values_list("cancelled_reason", flat=True)) == {"revoked"}
    row = row_of(text(client.get(list_url(participant))), cochin)
    assert 'data-state="revoked"' in row and ">Revoked</span>" in row
    assert "patient had hand surgery" in row and "(revoked)" in row
    assert "invitation-resend" not in row and "/revoke/" not in row and "/paper/" not in row
    # Revoking again leads back with a word, and changes nothing.
    response = client.post(url, {"reason": "again"}, follow=True)
    assert "only an open one can be revoked" in text(response)
    cochin.refresh_from_db()
    assert cochin.revoked_reason.startswith("patient had hand surgery")
    # Nothing more goes out for it.
    reminders.reminders_send_due(now=dt.datetime(2026, 11, 20, 15, tzinfo=UTC))
    assert Reminder.objects.filter(invitation=cochin, state=ReminderState.SENT).count() == 0


# --- Paper entry --------------------------------------------------------------------------------------


def test_paper_page_renders_the_whole_instrument_on_one_page(planned, coordinator, signed_in):
    page = text(
        signed_in(coordinator).get(reverse("pro_measures:invitation-paper", args=[planned["haq_di"].pk]))
    )
    assert page.count('<fieldset class="border rounded p-3 mb-3"') == 8
    for title in (
        "Dressing and grooming",
        "Arising",
        "Eating",
        "Walking",
        "Hygiene",
        "Reach",
        "Grip",
        "Activities",
    ):
        assert f">{title}</legend>" in page
    assert 'name="completed_on"' in page and 'value="2026-11-03"' in page
    # Eating: three items with four answers each, then aids/devices and help as yes / no.
    assert len(re.findall(r'type="radio"[^>]*name="eating_\d"', page)) == 3 * 4
    assert len(re.findall(r'type="radio"[^>]*name="eating_(aids|help)"', page)) == 2 * 2
    assert "Stanford" in page  # the licence note


def test_paper_entry_records_source_and_who_and_computes_the_score(
    participant, planned, coordinator, signed_in
):
    client = signed_in(coordinator)
    haq = planned["haq_di"]
    response = client.post(
        reverse("pro_measures:invitation-paper", args=[haq.pk]),
        as_post(HAQ_WORKED, completed_on="2026-11-03"),
    )
    assert response.status_code == 302
    saved = Response.objects.get(invitation=haq)
    assert (saved.source, saved.entered_by) == ("paper", coordinator)
    assert saved.answers == HAQ_WORKED
    assert saved.scores.get(name="haq_di").value == pytest.approx(1.375)
    haq.refresh_from_db()
    assert haq.status == InvitationStatus.COMPLETED
    assert not haq.reminders.filter(state=ReminderState.PENDING).exists()
    page = text(client.get(response["Location"]))
    assert "Paper HAQ" in page or "Paper Health Assessment" in page  # the confirmation
    row = row_of(page, haq)
    assert 'data-state="completed"' in row and 'data-source="paper"' in row
    assert "Paper form, entered by Casey Coordinator" in row
    assert "HAQ-DI (0-3): <strong>1.375</strong>" in row
    assert reverse("pro_measures:fhir-questionnaire-response", args=[haq.pk]) in row
    # A completed questionnaire cannot be entered twice.
    again = client.get(reverse("pro_measures:invitation-paper", args=[haq.pk]), follow=True)
    assert "a paper form can no longer be entered" in text(again)


def test_paper_entry_of_a_visual_analogue_scale_takes_millimetres(planned, coordinator, signed_in):
    shaq = planned["shaq_vas"]
    answers = complete_answers("shaq_vas", vas=75)
    response = signed_in(coordinator).post(
        reverse("pro_measures:invitation-paper", args=[shaq.pk]), as_post(answers, completed_on="2026-11-03")
    )
    assert response.status_code == 302
    scores = dict(Response.objects.get(invitation=shaq).scores.values_list("name", "value"))
    assert scores["shaq_pain"] == pytest.approx(1.5)  # 75 mm of a 150 mm line -> 1.5 of 3


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"eating_1": "7"}, "Select a valid choice"),
        ({"eating_1": "two"}, "Select a valid choice"),
        ({"eating_1": ""}, "1 question has no answer"),
        ({"dressing_aids": "maybe"}, "Select a valid choice"),
        ({"completed_on": "yesterday"}, "Enter a valid date"),
        ({"completed_on": "2026-11-04"}, "cannot be in the future"),
        ({"completed_on": "2026-10-01"}, "cannot be older"),
        ({"completed_on": "99999-99-99"}, "Enter a valid date"),
    ],
)
def test_bad_paper_input_is_refused_on_the_form_and_saves_nothing(
    planned, coordinator, signed_in, change, message
):
    haq = planned["haq_di"]
    data = as_post(HAQ_WORKED, completed_on="2026-11-03", unknown_field="x")
    data.update(change)
    response = signed_in(coordinator).post(reverse("pro_measures:invitation-paper", args=[haq.pk]), data)
    page = text(response)
    assert message in page and 'role="alert"' in page
    assert not Response.objects.filter(invitation=haq).exists()


def test_a_blank_paper_answer_is_kept_once_confirmed_and_the_score_follows_the_rules(
    planned, coordinator, signed_in
):
    haq = planned["haq_di"]
    client = signed_in(coordinator)
    url = reverse("pro_measures:invitation-paper", args=[haq.pk])
    answers = {k: v for k, v in HAQ_WORKED.items() if k != "eating_1"}  # eating_1 (2) left blank

    refused = text(client.post(url, as_post(answers, completed_on="2026-11-03")))
    assert "1 question has no answer" in refused and "No answer entered." in refused
    assert 'name="eating_2" value="1"' in refused.replace(" checked", "")  # the other answers are kept
    assert not Response.objects.filter(invitation=haq).exists()

    saved = client.post(url, as_post(answers, completed_on="2026-11-03", blanks_confirmed="on"))
    assert saved.status_code == 302
    response = Response.objects.get(invitation=haq)
    assert "eating_1" not in response.answers
    # Eating is now scored from eating_2 (1) instead of eating_1 (2): 1.375 - 1/8.
    assert response.scores.get(name="haq_di").value == pytest.approx(1.25)
    contexts = (
        event_model_for(Response).objects.filter(pgh_obj_id=response.pk).values_list("pgh_context", flat=True)
    )
    assert any("left blank on the paper form: eating_1" in (c or {}).get("reason", "") for c in contexts)


def test_a_blank_cochin_item_makes_the_sum_not_scorable_never_zero(
    planned, coordinator, signed_in, participant
):
    cochin = planned["cochin"]
    answers = complete_answers("cochin", choice=2)
    answers.pop("q1")
    response = signed_in(coordinator).post(
        reverse("pro_measures:invitation-paper", args=[cochin.pk]),
        as_post(answers, completed_on="2026-11-03", blanks_confirmed="on"),
        follow=True,
    )
    assert Response.objects.get(invitation=cochin).scores.get(name="cochin").value is None
    assert "not scorable" in text(response)


def test_vas_outside_the_line_is_refused(planned, coordinator, signed_in):
    shaq = planned["shaq_vas"]
    data = as_post(complete_answers("shaq_vas"), completed_on="2026-11-03")
    data["shaq_pain"] = "151"
    page = text(signed_in(coordinator).post(reverse("pro_measures:invitation-paper", args=[shaq.pk]), data))
    assert "less than or equal to 150" in page
    assert not Response.objects.filter(invitation=shaq).exists()


def test_unknown_invitations_are_not_found(coordinator, signed_in, planned):
    client = signed_in(coordinator)
    for name in ("invitation-paper", "invitation-revoke", "fhir-questionnaire-response"):
        assert client.get(reverse(f"pro_measures:{name}", args=[999999])).status_code == 404
    assert client.post(reverse("pro_measures:invitation-resend", args=[999999])).status_code == 404
    assert client.get(reverse("pro_measures:invitation-list", args=[999999])).status_code == 404
    # Resend is a POST only.
    assert client.get(reverse("pro_measures:invitation-resend", args=[planned["ptga"].pk])).status_code == 405


# --- Roles and sites --------------------------------------------------------------------------------


def test_monitor_reads_the_pages_but_every_post_is_forbidden(participant, planned, monitor, signed_in):
    client = signed_in(monitor)
    page = text(client.get(list_url(participant)))
    assert page.count("data-questionnaire=") == 6
    assert "invitation-resend" not in page and "/revoke/" not in page and "/paper/" not in page
    assert text(client.get(reverse("pro_measures:invitation-overview"))).count("data-invitation=") == 6
    haq = planned["haq_di"]
    posts = [
        (reverse("pro_measures:invitation-resend", args=[haq.pk]), {}),
        (reverse("pro_measures:invitation-revoke", args=[haq.pk]), {"reason": "test"}),
        (
            reverse("pro_measures:invitation-paper", args=[haq.pk]),
            as_post(HAQ_WORKED, completed_on="2026-11-03"),
        ),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert client.get(reverse("pro_measures:invitation-paper", args=[haq.pk])).status_code == 403
    haq.refresh_from_db()
    assert haq.status == InvitationStatus.SCHEDULED and not Response.objects.exists()
    assert Reminder.objects.filter(invitation=haq, sequence__gte=100).count() == 0


def test_another_sites_staff_get_not_found_and_see_nothing(participant, planned, coordinator_b, signed_in):
    client = signed_in(coordinator_b)
    haq = planned["haq_di"]
    for url in (
        list_url(participant),
        reverse("pro_measures:invitation-revoke", args=[haq.pk]),
        reverse("pro_measures:invitation-paper", args=[haq.pk]),
        reverse("pro_measures:fhir-questionnaire-response", args=[haq.pk]),
    ):
        assert client.get(url).status_code == 404, url
    for url, data in (
        (reverse("pro_measures:invitation-resend", args=[haq.pk]), {}),
        (reverse("pro_measures:invitation-revoke", args=[haq.pk]), {"reason": "test"}),
        (
            reverse("pro_measures:invitation-paper", args=[haq.pk]),
            as_post(HAQ_WORKED, completed_on="2026-11-03"),
        ),
    ):
        assert client.post(url, data).status_code == 404, url
    page = text(client.get(reverse("pro_measures:invitation-overview")))
    assert participant.study_id not in page and "No questionnaire matches" in page
    haq.refresh_from_db()
    assert haq.status == InvitationStatus.SCHEDULED


def test_navigation_offers_questionnaires_to_staff_who_may_see_them(make_user, site_a, signed_in):
    overview = reverse("pro_measures:invitation-overview")
    for role, shown in ((Role.COORDINATOR, True), (Role.MONITOR, True), (Role.ADMINISTRATOR, False)):
        user = make_user(role=role, sites=[site_a])
        page = text(signed_in(user).get(reverse("home")))
        assert (f'href="{overview}"' in page) is shown, role
        assert signed_in(user).get(overview).status_code == (200 if shown else 403)


# --- The site-wide list --------------------------------------------------------------------------------


def test_overview_filters_by_state_and_questionnaire(participant, planned, coordinator, signed_in):
    client = signed_in(coordinator)
    reminders.reminders_send_due(now=NOW)
    invitations.response_enter_paper(
        actor=coordinator, invitation=planned["ptga"], answers={"global": 3}, completed_on=TODAY
    )
    invitations.invitation_revoke(actor=coordinator, invitation=planned["cochin"], reason="hand surgery")
    url = reverse("pro_measures:invitation-overview")

    def states(query: dict) -> list[str]:
        return re.findall(r'data-state="(\w+)"', text(client.get(url, query)))

    assert sorted(states({})) == ["completed", "revoked", "sent", "sent", "sent", "sent"]
    assert states({"state": "completed"}) == ["completed"]
    assert states({"state": "revoked"}) == ["revoked"]
    assert states({"state": "open"}) == ["sent"] * 4
    assert states({"state": "sent", "questionnaire": "haq_di"}) == ["sent"]
    assert states({"state": "expired"}) == []
    # After the window closes the open ones are expired, whatever their stored status.
    with time_machine.travel(dt.datetime(2026, 11, 12, 15, tzinfo=UTC), tick=False):
        client = signed_in(coordinator)
        assert states({"state": "expired"}) == ["expired"] * 4
        assert states({"state": "sent"}) == [] and states({"state": "open"}) == []
    # A value that is not offered is an error on the form, never a 500; the list is unfiltered.
    page = text(client.get(url, {"state": "bogus", "questionnaire": "<script>", "page": "x"}))
    assert "Select a valid choice" in page and page.count("data-invitation=") == 6
    assert "<script>" not in page


def test_overview_shows_only_the_current_site_when_one_is_chosen(
    participant, planned, make_user, site_a, site_b, signed_in
):
    from trial.sites import SESSION_KEY

    both = make_user(role=Role.COORDINATOR, sites=[site_a, site_b])
    client = signed_in(both)
    url = reverse("pro_measures:invitation-overview")
    assert participant.study_id in text(client.get(url))
    session = client.session
    session[SESSION_KEY] = site_b.pk
    session.save()
    assert participant.study_id not in text(client.get(url))


# --- Query counts ---------------------------------------------------------------------------------------


def _fill(participant, coordinator, visit):
    """Invitations for every instrument of `visit`, one answered on paper, one revoked, sent."""
    created = [invite(visit, code) for code in ("pain_nrs", "ptga", "haq_di", "cochin")]
    reminders.schedule_for_invitation(created[0])
    invitations.response_enter_paper(
        actor=coordinator, invitation=created[1], answers={"global": 2}, completed_on=TODAY
    )
    invitations.invitation_revoke(actor=coordinator, invitation=created[3], reason="test")
    return created


def _queries(client, url) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries), response.content.decode()


def test_query_counts_do_not_grow_with_the_number_of_invitations(participant, coordinator, signed_in):
    client = signed_in(coordinator)
    baseline = participant.visits.get(code="W0")
    _fill(participant, coordinator, baseline)
    pages = (list_url(participant), reverse("pro_measures:invitation-overview"))
    for url in pages:
        client.get(url)  # the first request after signing in does its own bookkeeping
    small = [_queries(client, url) for url in pages]
    for _ in range(9):
        visit = visit_services.visit_add_unscheduled(
            actor=coordinator, participant=participant, visit_date=TODAY, reason="flare"
        )
        _fill(participant, coordinator, visit)
    large = [_queries(client, url) for url in pages]
    assert small[0][1].count("data-questionnaire=") == 4 and large[0][1].count("data-questionnaire=") == 40
    assert large[1][1].count("data-invitation=") == 40
    assert [count for count, _page in small] == [count for count, _page in large]
