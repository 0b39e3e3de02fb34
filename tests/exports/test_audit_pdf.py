"""The audit trail as a PDF for an inspector (and the CSV trail it shares its reading with)."""

from __future__ import annotations

import io
import zipfile
from zoneinfo import ZoneInfo

from lesions import services as lesion_services
from lesions.models import Injection, Lesion
from tests.exports.conftest import EMAIL, job_bytes, job_rows
from tests.reports.conftest import pdf_text
from trial.audit import audit_context, event_model_for
from trial.exports import audit_pdf

HOSTILE = '<img src="file:///etc/passwd"> {{ settings.SECRET_KEY }} http://169.254.169.254/'


def _flat(text: str) -> str:
    """The PDF's text with line breaks (table cells wrap) as single spaces."""
    return " ".join(text.split())


def _correct_laterality(coordinator, reason="side mistyped"):
    lesion = Lesion.objects.get(label="L2")
    lesion_services.lesion_update(
        actor=coordinator, lesion=lesion, data={"laterality": "right"}, reason=reason
    )
    return lesion


def test_pdf_lists_who_when_old_new_and_why_per_record(study_data, monitor, coordinator, run_export):
    lesion = _correct_laterality(coordinator)
    job = run_export(monitor, "audit_trail_pdf", study_id=study_data.study_id)
    assert job.status == "done", job.error
    data = job_bytes(job)
    assert data.startswith(b"%PDF") and job.file.name.endswith(".pdf")
    text = _flat(pdf_text(data))

    assert f"Audit trail — participant {study_data.study_id}" in text
    assert "Mona Monitor" in text  # who exported
    assert f"Lesion #{lesion.pk}" in text
    assert "left → right" in text
    assert "side mistyped" in text
    assert coordinator.full_name in text
    # The change's time in UTC and in the site's zone (site A: America/New_York in the fixtures).
    event = event_model_for(Lesion).objects.filter(pgh_obj_id=lesion.pk).order_by("-pgh_id").first()
    zone = ZoneInfo(study_data.site.time_zone)
    assert event.pgh_created_at.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S") in text
    assert event.pgh_created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z") in text
    assert study_data.site.time_zone in text
    assert (job.total, job.progress) == (1, 1)  # one participant


def test_identifying_values_are_hidden_from_a_monitor_but_not_from_the_investigator(
    study_data, monitor, investigator, run_export
):
    monitor_text = _flat(
        pdf_text(job_bytes(run_export(monitor, "audit_trail_pdf", study_id=study_data.study_id)))
    )
    assert EMAIL not in monitor_text
    assert "(email): (empty) → hidden" in monitor_text  # the change is listed, the value is not
    investigator_text = _flat(
        pdf_text(job_bytes(run_export(investigator, "audit_trail_pdf", study_id=study_data.study_id)))
    )
    assert EMAIL in investigator_text


def test_user_text_is_printed_as_text_and_nothing_is_fetched(
    study_data, monitor, coordinator, run_export, caplog
):
    lesion = Lesion.objects.get(label="L2")
    lesion_services.lesion_update(
        actor=coordinator, lesion=lesion, data={"site_detail": HOSTILE}, reason=HOSTILE
    )
    job = run_export(monitor, "audit_trail_pdf", study_id=study_data.study_id)
    text = _flat(pdf_text(job_bytes(job)))
    assert "file:///etc/passwd" in text and "{{ settings.SECRET_KEY }}" in text  # shown, escaped
    assert "root:x:0:0" not in text
    assert "refused to fetch" not in caplog.text  # escaped text names no resource to fetch


def test_a_deleted_record_keeps_its_history_in_the_trail(study_data, monitor, run_export):
    injection = Injection.objects.order_by("pk").first()
    with audit_context(reason="entered against the wrong lesion"):
        Injection.objects.filter(pk=injection.pk).delete()
    rows = job_rows(run_export(monitor, "audit_trail", study_id=study_data.study_id))
    deleted = [r for r in rows if r["form"] == "INJECTION" and r["record_id"] == str(injection.pk)]
    assert {r["action"] for r in deleted} == {"insert", "delete"}
    volume = next(r for r in deleted if r["action"] == "delete" and r["field"] == "volume_ml")
    assert (volume["old_value"], volume["new_value"]) == (f"{injection.volume_ml}", "")
    assert volume["reason"] == "entered against the wrong lesion"

    text = _flat(pdf_text(job_bytes(run_export(monitor, "audit_trail_pdf", study_id=study_data.study_id))))
    assert f"STS injection #{injection.pk}" in text and "entered against the wrong lesion" in text


def test_a_long_trail_comes_as_a_zip_of_numbered_pdf_parts_with_every_event(
    study_data, monitor, coordinator, run_export, monkeypatch
):
    _correct_laterality(coordinator)
    whole = run_export(monitor, "audit_trail_pdf")
    assert whole.file.name.endswith(".pdf")
    monkeypatch.setattr(audit_pdf, "ENTRIES_PER_PART", 4)
    job = run_export(monitor, "audit_trail_pdf")
    assert job.status == "done", job.error
    assert job.file.name.endswith(".zip") and job.row_count == whole.row_count
    with zipfile.ZipFile(io.BytesIO(job_bytes(job))) as archive:
        names = archive.namelist()
        texts = [_flat(pdf_text(archive.read(name))) for name in names]
    expected_parts = -(-whole.row_count // 4)
    assert names == [f"audit-trail-part-{n:03d}.pdf" for n in range(1, expected_parts + 1)]
    for number, text in enumerate(texts, start=1):
        assert f"this is part {number}" in text
    assert "(continued)" in "".join(texts[1:])
    assert sum(text.count("#") for text in texts) >= whole.row_count  # every entry names its record
    assert any("left → right" in text for text in texts)


def test_a_trail_too_long_for_pdf_fails_with_a_message_pointing_to_the_csv(
    study_data, monitor, run_export, monkeypatch
):
    monkeypatch.setattr(audit_pdf, "ENTRIES_PER_PART", 2)
    monkeypatch.setattr(audit_pdf, "MAX_PARTS", 2)
    job = run_export(monitor, "audit_trail_pdf")
    assert job.status == "failed" and not job.file
    assert "Export the audit trail as CSV, or as PDF per participant" in job.error


def test_the_whole_study_pdf_covers_only_the_users_sites(study_data, monitor_b, run_export):
    job = run_export(monitor_b, "audit_trail_pdf")
    text = pdf_text(job_bytes(job))
    assert study_data.study_id not in text
    assert "No audit events." in text and job.row_count == 0
