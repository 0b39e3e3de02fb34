"""The audit trail as a PDF an inspector can read: per participant and record, every create,
change and delete with when (UTC and the site's time), who, old -> new value and the reason.

Rendered by the visit reports' safe renderer (`trial.reports.pdf`: only its private schemes are
fetched; file://, http(s):// and data: are refused) from a Django template, so every value people
typed is escaped. The database is read in participant batches (`audit_trail.audit_entries`), but
WeasyPrint lays out a whole document in memory: a document therefore holds at most
`ENTRIES_PER_PART` audit events. A larger trail (a whole study) is split into parts, each a
complete PDF saying which part it is, delivered together as one ZIP file."""

from __future__ import annotations

import datetime as dt
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from trial.exports.audit_trail import AuditEntry, Progress, audit_entries, count_entries
from trial.protocol import PROTOCOL
from trial.reports.pdf import html_to_pdf

# Measured here (2 shared cores, load average 13): 1,000 entries made 92 pages in 110 s with a
# peak RSS of 460 MB, most of it WeasyPrint's layout. 500 entries (about 45 pages) keep a part
# near 250 MB.
ENTRIES_PER_PART = 500
# 30 parts (15,000 entries) fit in the task's 30-minute limit even on a busy worker. A longer
# trail is refused with a message pointing to the CSV or per-participant PDFs.
MAX_PARTS = 30


@dataclass(frozen=True)
class AuditPdfResult:
    entries: int
    parts: int

    @property
    def extension(self) -> str:
        return "pdf" if self.parts == 1 else "zip"


def _row(entry: AuditEntry) -> dict:
    zone = entry.participant.site.zone
    return {
        "utc": entry.at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "local": entry.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
        "who": entry.who or "—",
        "action": entry.action,
        "form": entry.spec.label,
        "record_id": entry.record_id,
        "visit": entry.visit_code,
        "changes": [
            {"field": change.field.label, "name": change.field.name, "old": change.old, "new": change.new}
            for change in entry.changes
        ],
        "reason": entry.reason,
    }


class _Part:
    """The entries of one PDF, grouped by participant in the order they came."""

    def __init__(self, number: int, continued_from: int | None):
        self.number = number
        self.groups: list[dict] = []
        self.entries = 0
        self._continued_from = continued_from

    def add(self, entry: AuditEntry) -> None:
        participant = entry.participant
        if not self.groups or self.groups[-1]["participant_id"] != participant.pk:
            self.groups.append(
                {
                    "participant_id": participant.pk,
                    "study_id": participant.study_id,
                    "site": str(participant.site),
                    "time_zone": participant.site.time_zone,
                    "continued": participant.pk == self._continued_from and not self.groups,
                    "rows": [],
                }
            )
        self.groups[-1]["rows"].append(_row(entry))
        self.entries += 1


def write_audit_trail_pdf(
    out: BinaryIO,
    *,
    participants,
    user,
    scope: str,
    progress: Progress = lambda done: None,
    entries_per_part: int | None = None,
    **_kw,
) -> AuditPdfResult:
    """Write the PDF (or, past `entries_per_part` events, a ZIP of PDF parts) to `out`."""
    entries_per_part = entries_per_part or ENTRIES_PER_PART
    entries = count_entries(participants)
    if entries > entries_per_part * MAX_PARTS:
        raise ValidationError(
            _(
                "This audit trail has %(entries)s entries, more than a PDF export holds "
                "(%(limit)s). Export the audit trail as CSV, or as PDF per participant."
            )
            % {"entries": entries, "limit": entries_per_part * MAX_PARTS}
        )
    generated_at = timezone.now()
    context = {
        "study": PROTOCOL.code,
        "protocol_version": PROTOCOL.version,
        "scope": scope,
        "exported_by": user.audit_name,
        "generated_utc": generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    part = _Part(1, None)
    archive: zipfile.ZipFile | None = None
    total = 0

    def render(part: _Part, *, split: bool) -> bytes:
        html = render_to_string("exports/audit_trail_pdf.html", {**context, "part": part, "split": split})
        return html_to_pdf(html).pdf

    for entry in audit_entries(participants, user=user, progress=progress):
        if part.entries >= entries_per_part:
            if archive is None:
                archive = zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED)
            archive.writestr(f"audit-trail-part-{part.number:03d}.pdf", render(part, split=True))
            part = _Part(part.number + 1, part.groups[-1]["participant_id"])
        part.add(entry)
        total += 1
    if archive is None:
        out.write(render(part, split=False))
    else:
        archive.writestr(f"audit-trail-part-{part.number:03d}.pdf", render(part, split=True))
        archive.close()
    return AuditPdfResult(entries=total, parts=part.number)
