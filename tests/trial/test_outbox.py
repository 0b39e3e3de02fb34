"""The development outbox: administrators read the e-mails Django's file backend wrote, with links."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection, send_mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from trial.outbox import read_outbox
from trial.roles import Role

pytestmark = pytest.mark.django_db

FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@pytest.fixture
def outbox_dir(settings, tmp_path):
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    return tmp_path


@pytest.fixture
def administrator(make_user):
    return make_user(role=Role.ADMINISTRATOR)


@pytest.fixture
def admin_client(signed_in, administrator):
    return signed_in(administrator)


def outbox_page(client) -> str:
    response = client.get(reverse("outbox"))
    assert response.status_code == 200
    return response.content.decode()


def test_administrator_reads_a_sent_email_and_can_follow_its_link(outbox_dir, admin_client):
    send_mail(
        "Set your password",
        "Hello Ana,\n\nChoose your password here: https://edc.example.org/account/set/abc123/.\n",
        "edc@example.org",
        ["ana@example.org"],
    )

    page = outbox_page(admin_client)

    assert "Set your password" in page
    assert "ana@example.org" in page
    assert "Hello Ana," in page
    # The sentence's full stop is not part of the link.
    assert '<a href="https://edc.example.org/account/set/abc123/"' in page


def test_html_email_shows_the_plain_text_part_and_links_from_both_parts(outbox_dir, admin_client):
    message = EmailMultiAlternatives(
        "Visit reminder",
        "Plain text: the visit is due. Details at https://edc.example.org/plain-only",
        "edc@example.org",
        ["ben@example.org"],
    )
    message.attach_alternative(
        '<p>HTML markup version. <a href="https://edc.example.org/visits/7/?tab=forms&amp;site=A1">Open</a></p>',
        "text/html",
    )
    message.send()

    page = outbox_page(admin_client)

    assert "Plain text: the visit is due." in page
    assert "HTML markup version" not in page
    assert '<a href="https://edc.example.org/plain-only"' in page
    assert '<a href="https://edc.example.org/visits/7/?tab=forms&amp;site=A1"' in page


def test_non_ascii_subject_and_body_are_shown_decoded(outbox_dir, admin_client):
    send_mail("Réinitialisation — étape 2", "Grüße aus São Paulo", "edc@example.org", ["zoë@example.org"])

    page = outbox_page(admin_client)

    assert "Réinitialisation — étape 2" in page
    assert "Grüße aus São Paulo" in page


def test_newest_email_is_listed_first_with_its_time(outbox_dir, admin_client):
    with time_machine.travel(datetime(2026, 1, 5, 9, 0, tzinfo=UTC), tick=False):
        send_mail("Older reminder", "first", "edc@example.org", ["a@example.org"])
    with time_machine.travel(datetime(2026, 1, 5, 10, 30, tzinfo=UTC), tick=False):
        send_mail("Newer reminder", "second", "edc@example.org", ["a@example.org"])

    page = outbox_page(admin_client)

    assert page.index("Newer reminder") < page.index("Older reminder")
    assert 'datetime="2026-01-05T10:30:00+00:00"' in page
    assert 'datetime="2026-01-05T09:00:00+00:00"' in page


def test_newest_first_also_within_one_file(outbox_dir, admin_client):
    # One connection (a task sending reminders) appends every message to the same file.
    with get_connection() as mail:
        for subject, hour in (("Morning reminder", 9), ("Noon reminder", 12)):
            with time_machine.travel(datetime(2026, 1, 5, hour, 0, tzinfo=UTC), tick=False):
                mail.send_messages([EmailMessage(subject, "x", "edc@example.org", ["a@example.org"])])
    assert len(list(outbox_dir.iterdir())) == 1

    page = outbox_page(admin_client)

    assert page.index("Noon reminder") < page.index("Morning reminder")


def test_every_message_of_a_file_holding_several_is_listed(outbox_dir, admin_client):
    messages = [
        EmailMessage(f"Batch message {n}", f"body {n}", "edc@example.org", [f"p{n}@example.org"])
        for n in range(3)
    ]
    get_connection().send_messages(messages)
    assert len(list(outbox_dir.iterdir())) == 1

    page = outbox_page(admin_client)

    assert page.count("<article") == 3
    for n in range(3):
        assert f"Batch message {n}" in page
        assert f"p{n}@example.org" in page


def test_a_malformed_file_is_listed_as_unreadable_next_to_good_emails(outbox_dir, admin_client):
    send_mail("Readable message", "fine", "edc@example.org", ["a@example.org"])
    (outbox_dir / "20260105-090000-1.log").write_bytes(b"\x00\xff\xfe not an e-mail\n" + b"-" * 79 + b"\n")

    page = outbox_page(admin_client)

    assert "Unreadable: 20260105-090000-1.log" in page
    assert "Readable message" in page


@pytest.mark.parametrize("make_directory", [True, False], ids=["empty directory", "missing directory"])
def test_no_emails_yet(settings, tmp_path, admin_client, make_directory):
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path / "outbox"
    if make_directory:
        settings.EMAIL_FILE_PATH.mkdir()

    assert "No e-mails yet" in outbox_page(admin_client)


def test_page_says_so_when_email_is_not_written_to_files(settings, tmp_path, admin_client):
    settings.EMAIL_BACKEND = FILE_BACKEND
    settings.EMAIL_FILE_PATH = tmp_path
    send_mail("Left over from another day", "old", "edc@example.org", ["a@example.org"])
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

    page = outbox_page(admin_client)

    assert "there is no outbox to show" in page
    assert "django.core.mail.backends.smtp.EmailBackend" in page
    assert "Left over from another day" not in page


def test_coordinator_is_refused(outbox_dir, signed_in, make_user, site_a):
    send_mail("Private message", "secret", "edc@example.org", ["a@example.org"])
    coordinator = make_user(role=Role.COORDINATOR, sites=[site_a])

    response = signed_in(coordinator).get(reverse("outbox"))

    assert response.status_code == 403
    assert "Private message" not in response.content.decode()


def test_anonymous_visitor_is_sent_to_login(outbox_dir, client):
    response = client.get(reverse("outbox"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_outbox_is_in_the_menu_of_administrators_only(signed_in, administrator, make_user, site_a, client):
    outbox_link = f'href="{reverse("outbox")}"'
    assert outbox_link in signed_in(administrator).get(reverse("home")).content.decode()

    client.logout()
    coordinator = make_user(role=Role.COORDINATOR, sites=[site_a])
    assert outbox_link not in signed_in(coordinator).get(reverse("home")).content.decode()


def test_page_queries_do_not_grow_with_the_number_of_emails(outbox_dir, admin_client):
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as queries:
            outbox_page(admin_client)
        return len(queries)

    send_mail("One", "1", "edc@example.org", ["a@example.org"])
    with_one = queries_for_page()
    for n in range(10):
        send_mail(f"More {n}", "n", "edc@example.org", ["a@example.org"])

    assert queries_for_page() == with_one


def test_only_the_newest_emails_are_read_into_the_page(outbox_dir):
    for hour in (8, 9, 10):
        with time_machine.travel(datetime(2026, 1, 5, hour, 0, tzinfo=UTC), tick=False):
            send_mail(f"At {hour}", "x", "edc@example.org", ["a@example.org"])

    outbox = read_outbox(outbox_dir, limit=2)

    assert [email.subject for email in outbox.emails] == ["At 10", "At 9"]
    assert outbox.truncated
    assert not read_outbox(outbox_dir, limit=3).truncated
