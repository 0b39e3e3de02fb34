"""The development outbox: e-mails written by Django's file-based backend, readable in the browser.

On a development machine (`EMAIL_URL=filemail://`) nothing is sent; Django's file backend appends
each message to a file in `EMAIL_FILE_PATH`, one file per connection, every message followed by a
line of 79 '-'. This page lets an administrator read those messages and follow their links
(password resets, invitations, reminders) without a mail server.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.mail.backends.filebased import EmailBackend as FileEmailBackend
from django.utils.html import strip_tags
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _
from django.views.generic import TemplateView

logger = logging.getLogger(__name__)

# django.core.mail.backends.filebased.EmailBackend.write_message ends every message with this line.
SEPARATOR = b"-" * 79
# The newest messages shown on the page; older ones stay in the directory.
PAGE_LIMIT = 100

_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)


@dataclass(frozen=True)
class OutboxEmail:
    """One message from the outbox, or a note that a message or file could not be read."""

    file_name: str
    sent_at: datetime  # the Date header; the file's modification time when there is none
    position: int = 0  # order of the message within its file
    sender: str = ""
    to: str = ""
    cc: str = ""
    subject: str = ""
    body: str = ""  # the text/plain part (HTML-only mail: its text without tags)
    links: tuple[str, ...] = ()  # http(s) URLs in the text and HTML parts, first occurrence first
    attachments: tuple[str, ...] = ()
    problem: str = ""  # why the message is unreadable; empty when it was read

    @property
    def readable(self) -> bool:
        return not self.problem


@dataclass(frozen=True)
class Outbox:
    emails: list[OutboxEmail] = field(default_factory=list)  # newest first, at most PAGE_LIMIT
    truncated: bool = False  # older e-mails exist that are not in `emails`
    problem: str = ""  # the directory itself could not be read


def uses_file_backend() -> bool:
    try:
        backend = import_string(settings.EMAIL_BACKEND)
    except ImportError:
        return False
    return isinstance(backend, type) and issubclass(backend, FileEmailBackend)


def read_outbox(directory: Path, *, limit: int = PAGE_LIMIT) -> Outbox:
    """The e-mails in `directory`, newest first; a missing directory is an empty outbox."""
    try:
        files = [p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]
    except FileNotFoundError:
        return Outbox()
    except OSError as exc:
        logger.warning("Cannot read the e-mail outbox %s: %s", directory, exc)
        return Outbox(problem=exc.strerror or str(exc))
    files.sort(key=_modified_at, reverse=True)

    emails: list[OutboxEmail] = []
    for read, path in enumerate(files, start=1):
        emails.extend(read_outbox_file(path))
        # A file written later holds later messages, so once `limit` messages are collected the
        # remaining (older) files cannot contribute one of the newest.
        if len(emails) >= limit:
            truncated = read < len(files) or len(emails) > limit
            break
    else:
        truncated = False
    emails.sort(key=lambda e: (e.sent_at, e.file_name, e.position), reverse=True)
    return Outbox(emails=emails[:limit], truncated=truncated)


def read_outbox_file(path: Path) -> list[OutboxEmail]:
    """Every message in one file of the file backend; unreadable ones are returned as such."""
    modified_at = _modified_at(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [OutboxEmail(file_name=path.name, sent_at=modified_at, problem=exc.strerror or str(exc))]
    chunks = split_messages(data)
    if not chunks:
        return [OutboxEmail(file_name=path.name, sent_at=modified_at, problem=_("The file holds no e-mail."))]
    return [
        parse_message(chunk, file_name=path.name, position=position, fallback_time=modified_at)
        for position, chunk in enumerate(chunks)
    ]


def split_messages(data: bytes) -> list[bytes]:
    """The raw messages in a file: each is followed by a line of 79 '-' (the last may not be)."""
    messages, current = [], []
    for line in data.splitlines(keepends=True):
        if line.rstrip(b"\r\n") == SEPARATOR:
            messages.append(b"".join(current))
            current = []
        else:
            current.append(line)
    messages.append(b"".join(current))
    return [message for message in messages if message.strip()]


def parse_message(raw: bytes, *, file_name: str, position: int, fallback_time: datetime) -> OutboxEmail:
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if not message.keys():
            raise ValueError(_("no e-mail headers"))
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        if plain is not None:
            body = _text_of(plain)
        elif html is not None:
            body = strip_tags(_text_of(html)).strip()
        else:
            body = ""
        return OutboxEmail(
            file_name=file_name,
            position=position,
            sent_at=_date_of(message) or fallback_time,
            sender=str(message.get("From", "")),
            to=str(message.get("To", "")),
            cc=str(message.get("Cc", "")),
            subject=str(message.get("Subject", "")),
            body=body,
            links=tuple(_links_in(message)),
            attachments=tuple(
                part.get_filename() or _("(unnamed)") for part in message.walk() if part.is_attachment()
            ),
        )
    except Exception as exc:  # noqa: BLE001 - a file in the outbox can hold anything; the page must not fail
        return OutboxEmail(
            file_name=file_name,
            position=position,
            sent_at=fallback_time,
            problem=_("Unreadable e-mail: %(error)s") % {"error": exc},
        )


def _text_of(part: EmailMessage) -> str:
    try:
        return part.get_content()
    except (LookupError, UnicodeError):
        # An unknown or wrong charset: show the text with replacement characters.
        return (part.get_payload(decode=True) or b"").decode("utf-8", errors="replace")


def _date_of(message: EmailMessage) -> datetime | None:
    header = message.get("Date")
    when = getattr(header, "datetime", None)
    if when is None:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _modified_at(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return datetime.fromtimestamp(0, tz=UTC)


def _links_in(message: EmailMessage) -> list[str]:
    links: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.is_attachment():
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            links.extend(_urls_in_text(_text_of(part)))
        elif content_type == "text/html":
            collector = _HtmlLinks()
            collector.feed(_text_of(part))
            collector.close()
            links.extend(collector.links)
    return list(dict.fromkeys(link for link in links if _is_web_url(link)))


def _urls_in_text(text: str) -> list[str]:
    urls = []
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?")
        # "(see https://example.org/x)": the closing parenthesis is prose, not part of the URL.
        while url.endswith(")") and url.count(")") > url.count("("):
            url = url[:-1].rstrip(".,;:!?")
        urls.append(url)
    return urls


def _is_web_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme.lower() in {"http", "https"} and bool(parts.netloc)


class _HtmlLinks(HTMLParser):
    """Collects link targets (href) and URLs written out in the text of an HTML part."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.extend(value.strip() for name, value in attrs if name == "href" and value)

    def handle_data(self, data):
        self.links.extend(_urls_in_text(data))


class OutboxView(PermissionRequiredMixin, TemplateView):
    """Administrators only: the e-mails the file backend wrote, newest first."""

    permission_required = "trial.view_outbox"
    template_name = "trial/outbox.html"

    def get_context_data(self, **kwargs):
        file_backend = uses_file_backend()
        directory = Path(settings.EMAIL_FILE_PATH)
        return super().get_context_data(
            file_backend=file_backend,
            email_backend=settings.EMAIL_BACKEND,
            directory=directory,
            outbox=read_outbox(directory) if file_backend else Outbox(),
            page_limit=PAGE_LIMIT,
            **kwargs,
        )
