from __future__ import annotations

from participants.models import Screening
from tests.exports.conftest import EMAIL, MRN, job_bytes, job_rows
from trial.exports.deidentify import age_band


def test_deidentified_export_contains_none_of_the_identifiers(study_data, data_manager, run_export):
    screening = Screening.objects.get(participant=study_data)
    job = run_export(data_manager, "deidentified")
    text = job_bytes(job).decode("utf-8-sig")
    identifiers = [
        screening.first_name,
        screening.last_name,
        MRN,
        EMAIL,
        study_data.study_id,
        "1970-05-17",
        "1970",
        "2026-11-03",
        "2026-09-01",  # lesion first seen
        "03/11/2026",
        "Jane Doe",  # the participant's signature on the consent
    ]
    present = [value for value in identifiers if value in text]
    assert present == []
    rows = job_rows(job)
    assert len(rows) > 30  # the clinical values are still there


def test_deidentified_dates_are_study_days_from_baseline(study_data, data_manager, run_export):
    rows = job_rows(run_export(data_manager, "deidentified"))
    by_field = {(r["form"], r["field"]): r for r in rows}
    w0 = next(r for r in rows if r["form"] == "VISIT" and r["visit"] == "W0" and r["field"] == "visit_date")
    assert (w0["value"], w0["unit"]) == ("0", "study day")
    first_seen = [r["value"] for r in rows if r["form"] == "LESION" and r["field"] == "first_seen_on"]
    assert set(first_seen) == {"-63"}  # 1 September 2026, 63 days before the baseline visit
    onset = by_field[("ADVERSEEVENT", "onset_date")]
    assert onset["value"] == "2026"  # a partial date keeps its year only
    assert by_field[("PARTICIPANT", "age_at_baseline")]["value"] == "56"
    subjects = {r["study_id"] for r in rows}
    assert len(subjects) == 1 and subjects.pop().startswith("S-")


def test_free_text_is_left_out_unless_chosen(study_data, data_manager, run_export):
    without = {r["field"] for r in job_rows(run_export(data_manager, "deidentified"))}
    assert "description" not in without and "operator" not in without
    assert "email" not in without and "time_zone" not in without
    chosen = job_rows(run_export(data_manager, "deidentified", include_free_text=True))
    assert any(r["field"] == "description" and "Redness" in r["value"] for r in chosen)


def test_ages_over_89_are_reported_as_90_plus():
    assert [age_band(a) for a in (18, 89, 90, 104)] == ["18", "89", "90+", "90+"]
