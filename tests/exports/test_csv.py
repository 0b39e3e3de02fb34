from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter

from lesions.models import Lesion, UltrasoundMeasurement
from tests.exports.conftest import job_bytes, job_rows
from trial.exports.csv_export import LONG_HEADER, safe_cell


def test_long_format_has_one_row_per_value_with_units_and_who_entered_it(
    study_data, monitor, coordinator, run_export
):
    job = run_export(monitor, "csv_long")
    data = job_bytes(job)
    assert data.startswith(b"\xef\xbb\xbfstudy_id,")  # one byte order mark: spreadsheets read UTF-8
    assert data.count(b"\xef\xbb\xbf") == 1
    rows = job_rows(job)
    assert tuple(rows[0]) == LONG_HEADER
    assert job.row_count == len(rows)
    keys = Counter((r["form"], r["record_id"], r["field"]) for r in rows)
    assert max(keys.values()) == 1  # one row per value

    l1 = Lesion.objects.get(label="L1")
    m1 = UltrasoundMeasurement.objects.get(lesion=l1)
    values = {
        r["field"]: r for r in rows if r["form"] == "ULTRASOUNDMEASUREMENT" and r["record_id"] == str(m1.pk)
    }
    assert values["length_mm"]["value"] == "12.0"
    assert values["length_mm"]["unit"] == "mm"
    assert values["volume_mm3"]["unit"] == "mm3"
    assert values["doppler_signal"]["value"] == m1.doppler_signal  # the code, not the label
    assert values["length_mm"]["visit"] == "W0"
    assert values["length_mm"]["study_id"] == study_data.study_id
    assert values["length_mm"]["site"] == "A1"
    assert values["length_mm"]["entered_by"] == coordinator.audit_name
    # The database's clock stamps the audit events (time_machine cannot move it).
    assert dt.datetime.fromisoformat(values["length_mm"]["entered_at_utc"]).utcoffset() == dt.timedelta(0)
    injection_rows = [r for r in rows if r["form"] == "INJECTION" and r["field"] == "volume_ml"]
    assert sorted(r["value"] for r in injection_rows) == ["0.40", "0.60"]
    assert {r["unit"] for r in injection_rows} == {"mL"}


def test_long_format_counts_every_stored_value_of_a_record(study_data, monitor, run_export):
    rows = job_rows(run_export(monitor, "csv_long"))
    lesion = Lesion.objects.get(label="L2")
    lesion_rows = {
        r["field"]: r["value"] for r in rows if r["form"] == "LESION" and r["record_id"] == str(lesion.pk)
    }
    # label, site, side, target flag and date first seen; digit, phalanx, detail and resolution are empty.
    assert lesion_rows == {
        "label": "L2",
        "anatomical_site": "elbow",
        "laterality": "left",
        "is_target": "false",
        "first_seen_on": "2026-09-01",
    }


def test_wide_format_has_one_row_per_record_and_a_column_per_field(study_data, monitor, run_export):
    job = run_export(monitor, "csv_wide", form="ULTRASOUNDMEASUREMENT")
    rows = job_rows(job)
    assert len(rows) == UltrasoundMeasurement.objects.count() == 2
    assert {"length_mm", "width_mm", "volume_mm3", "doppler_signal"} <= set(rows[0])
    assert sorted(r["length_mm"] for r in rows) == ["12.0", "20.0"]


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(
    study_data, monitor, coordinator, run_export
):
    from lesions import services

    lesion = Lesion.objects.get(label="L2")
    services.lesion_update(
        actor=coordinator,
        lesion=lesion,
        data={"site_detail": '=HYPERLINK("http://x.test","y")'},
        reason="detail",
        expected_version=lesion.row_version,
    )
    job = run_export(monitor, "csv_wide", form="LESION")
    text = job_bytes(job).decode("utf-8-sig")
    row = next(r for r in csv.DictReader(io.StringIO(text)) if r["label"] == "L2")
    assert row["site_detail"] == '\'=HYPERLINK("http://x.test","y")'
    assert safe_cell("-2.5") == "-2.5"  # numbers stay numbers
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("+1+cmd") == "'+1+cmd"


def test_audit_trail_shows_old_and_new_value_who_and_why(study_data, monitor, coordinator, run_export):
    from lesions import services

    lesion = Lesion.objects.get(label="L2")
    services.lesion_update(
        actor=coordinator,
        lesion=lesion,
        data={"laterality": "right"},
        reason="side mistyped",
        expected_version=lesion.row_version,
    )
    rows = job_rows(run_export(monitor, "audit_trail", study_id=study_data.study_id))
    change = next(
        r for r in rows if r["form"] == "LESION" and r["field"] == "laterality" and r["action"] == "update"
    )
    assert (change["old_value"], change["new_value"]) == ("left", "right")
    assert change["reason"] == "side mistyped"
    assert change["who"] == coordinator.audit_name
    assert change["when_utc"].endswith("Z")
    # A monitor may not read the participant's e-mail: the change is listed, the value is not.
    email = next(r for r in rows if r["form"] == "PARTICIPANT" and r["field"] == "email")
    assert email["new_value"] == "hidden"
