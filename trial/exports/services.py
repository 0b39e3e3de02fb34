"""Export workflows: request an export (logged, enqueued on commit) and run it (in the worker)."""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files import File
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from participants.models import Participant
from trial.audit import audit_context
from trial.exports import csv_export, fhir_bundle, odm
from trial.exports.deidentify import Deidentifier
from trial.exports.dictionary import FORMS, form_by_code
from trial.exports.models import ExportJob, ExportKind, ExportStatus
from trial.exports.progress import ProgressReporter
from trial.exports.records import form_queryset
from trial.models import Site

EXPORT_PERMISSION = "exports.export_data"


@dataclass(frozen=True)
class ExportParameters:
    """Checked parameters of an export; `from_json` refuses anything malformed."""

    site_ids: tuple[int, ...]
    form: str = ""
    study_id: str = ""
    include_audit: bool = False
    include_free_text: bool = False

    def as_json(self) -> dict:
        return {
            "site_ids": list(self.site_ids),
            "form": self.form,
            "study_id": self.study_id,
            "include_audit": self.include_audit,
            "include_free_text": self.include_free_text,
        }

    @classmethod
    def from_json(cls, kind: str, data) -> ExportParameters:
        if kind not in ExportKind.values:
            raise ValidationError(_("Unknown export."))
        if not isinstance(data, dict):
            raise ValidationError(_("The export parameters are malformed."))
        site_ids = data.get("site_ids") or []
        if not isinstance(site_ids, list) or not all(isinstance(i, int) for i in site_ids):
            raise ValidationError(_("The sites are malformed."))
        form = str(data.get("form") or "")
        if kind == ExportKind.CSV_WIDE and form_by_code(form) is None:
            raise ValidationError(_("Choose the form to export."))
        return cls(
            site_ids=tuple(sorted(set(site_ids))),
            form=form.upper(),
            study_id=str(data.get("study_id") or "").strip(),
            include_audit=bool(data.get("include_audit")),
            include_free_text=bool(data.get("include_free_text")),
        )


def export_participants(*, user, parameters: ExportParameters):
    """The participants an export covers: the user's sites (never more), narrowed by the chosen
    sites and participant."""
    participants = Participant.objects.visible_to(user)
    if parameters.site_ids:
        participants = participants.filter(site_id__in=parameters.site_ids)
    if parameters.study_id:
        participants = participants.filter(study_id=parameters.study_id)
    return participants


def export_request(*, actor, kind: str, parameters: dict) -> ExportJob:
    """Log an export request and enqueue it once the transaction commits."""
    from trial.exports.tasks import export_run

    if not actor.has_perm(EXPORT_PERMISSION):
        raise PermissionDenied
    checked = ExportParameters.from_json(kind, parameters)
    visible = set(Site.objects.visible_to(actor).values_list("pk", flat=True))
    if set(checked.site_ids) - visible:
        raise ValidationError(_("You may export only the data of your sites."))
    if not checked.site_ids:
        checked = ExportParameters(**{**checked.as_json(), "site_ids": tuple(sorted(visible))})
    if checked.study_id and not export_participants(user=actor, parameters=checked).exists():
        raise ValidationError(_("No participant with this study id at your sites."))
    with transaction.atomic(), audit_context(reason="export requested"):
        job = ExportJob.objects.create(kind=kind, parameters=checked.as_json(), requested_by=actor)
        job_id = job.pk
        transaction.on_commit(lambda: export_run.delay(job_id))
    return job


_EXTENSIONS = {ExportKind.ODM: "xml", ExportKind.FHIR: "json"}


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Produce the job's file (idempotent: a finished job is left as it is)."""
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().select_related("requested_by").filter(pk=job_id).first()
        if job is None or job.status == ExportStatus.DONE:
            return job
        job.status = ExportStatus.RUNNING
        job.started_at = timezone.now()
        job.save(update_fields=["status", "started_at"])

    user = job.requested_by
    try:
        parameters = ExportParameters.from_json(job.kind, job.parameters)
        if not user.is_active or not user.has_perm(EXPORT_PERMISSION):
            raise ValidationError(_("The person who asked for this export may no longer export data."))
        participants = export_participants(user=user, parameters=parameters)
        forms = [form_by_code(parameters.form)] if job.kind == ExportKind.CSV_WIDE else FORMS
        # Counted before the snapshot starts (a record saved in between makes the bar end a little
        # early or late): the total is audited, and the snapshot's transaction writes nothing.
        ExportJob.objects.filter(pk=job.pk).update(total=_total(job.kind, forms, participants), progress=0)
        with (
            export_snapshot() as own_snapshot,
            ProgressReporter(job.pk, own_connection=own_snapshot) as progress,
        ):
            rows, extension, digest, handle = _write(job, parameters, participants, user, progress)
        # The file and the job's end are written after the snapshot, in a transaction of their own.
        name = f"{job.kind}-{timezone.now():%Y%m%d-%H%M%S}.{extension}"
        with transaction.atomic(), audit_context(reason="export finished"):
            job.refresh_from_db()
            job.file.save(name, File(handle), save=False)
            job.sha256 = digest
            job.row_count = rows
            job.status = ExportStatus.DONE
            job.finished_at = timezone.now()
            job.progress = job.total
            job.save()
        handle.close()
    except ValidationError as error:
        _fail(job, " ".join(error.messages))
    except Exception:
        _fail(job, _("The export failed; the team has been told."))
        raise
    return job


@contextlib.contextmanager
def export_snapshot() -> Iterator[bool]:
    """Every read of the block in one transaction, REPEATABLE READ and READ ONLY: the export is
    the data as it stood at its first read. An export must not mix states of the data: a visit's
    measurements and its injections saved together while the export runs are in the file
    together or not at all, whichever form is read first.

    It is also what lets the records stream. Outside a transaction Django declares its
    server-side cursors (`.iterator()`) WITH HOLD, and PostgreSQL then materialises each form's
    whole result (in temporary files at 10,000 participants) before the first row is read; inside
    one, rows come as they are found.

    Yields True when the block got a snapshot of its own. Inside a caller's transaction (a test's,
    say) the export reads what that transaction sees and yields False: the isolation of a
    transaction that has already read cannot change, and a job row it has not committed is
    invisible to any other connection, so progress must be written in it."""
    if connection.in_atomic_block:
        yield False
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Before any other statement of the transaction, as PostgreSQL requires.
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield True


def _fail(job: ExportJob, message: str) -> None:
    with audit_context(reason="export failed"):
        ExportJob.objects.filter(pk=job.pk).update(
            status=ExportStatus.FAILED, error=message[:500], finished_at=timezone.now()
        )
    job.refresh_from_db()


# What the writers report progress in: participants (per-participant writers), responses (FHIR)
# or records (the CSV writers).
_BY_PARTICIPANT = (ExportKind.ODM, ExportKind.AUDIT_TRAIL, ExportKind.AUDIT_TRAIL_PDF)


def _total(kind: str, forms, participants) -> int:
    if kind in _BY_PARTICIPANT:
        return participants.count()
    if kind == ExportKind.FHIR:
        return fhir_bundle.responses_for(participants).count()
    return sum(form_queryset(spec, participants).count() for spec in forms)


def _write(job, parameters: ExportParameters, participants, user, progress):
    """Write the export to a temporary file; returns (rows, file extension, sha256, file
    positioned at 0)."""
    handle = tempfile.TemporaryFile()
    extension = _EXTENSIONS.get(job.kind, "csv")
    if job.kind == ExportKind.AUDIT_TRAIL_PDF:
        # Imported here: WeasyPrint costs every other export ~5 s and ~40 MB to load.
        from trial.exports import audit_pdf

        scope = (
            _("participant %(study_id)s") % {"study_id": parameters.study_id} if parameters.study_id else ""
        )
        result = audit_pdf.write_audit_trail_pdf(
            handle,
            participants=participants,
            user=user,
            scope=scope or _("the whole study (sites %(sites)s)") % {"sites": _site_codes(parameters)},
            progress=progress,
        )
        rows, extension = result.entries, result.extension
    elif job.kind == ExportKind.ODM:
        rows = odm.write_odm(
            handle, participants=participants, include_audit=parameters.include_audit, progress=progress
        )
        handle.seek(0)
        errors = odm.validate_odm(handle)
        if errors:
            raise ValidationError(
                _("The ODM file does not validate: %(errors)s") % {"errors": "; ".join(errors[:3])}
            )
    elif job.kind == ExportKind.FHIR:
        rows = fhir_bundle.write_fhir_bundle(handle, participants=participants, progress=progress)
    else:
        import io

        # UTF-8 with a byte order mark (Excel reads the file as UTF-8), written as the mark and
        # then plain UTF-8: the "utf-8-sig" codec runs Python code per write, i.e. per row.
        text = io.TextIOWrapper(handle, encoding="utf-8", newline="")
        text.write("\ufeff")
        kwargs = {"participants": participants, "user": user, "progress": progress}
        if job.kind == ExportKind.DICTIONARY:
            rows = csv_export.write_dictionary(text)
        elif job.kind == ExportKind.CSV_LONG:
            rows = csv_export.write_long(text, **kwargs)
        elif job.kind == ExportKind.CSV_WIDE:
            rows = csv_export.write_wide(text, form=form_by_code(parameters.form), **kwargs)
        elif job.kind == ExportKind.DEIDENTIFIED:
            deidentifier = Deidentifier(participants, include_free_text=parameters.include_free_text)
            rows = csv_export.write_long(text, deidentifier=deidentifier, **kwargs)
        else:
            rows = csv_export.write_audit_trail(text, **kwargs)
        text.flush()
        text.detach()
    handle.seek(0)
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 16), b""):
        digest.update(chunk)
    handle.seek(0)
    return rows, extension, digest.hexdigest(), handle


def _site_codes(parameters: ExportParameters) -> str:
    return ", ".join(
        Site.objects.filter(pk__in=parameters.site_ids).order_by("code").values_list("code", flat=True)
    )
