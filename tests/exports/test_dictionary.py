from __future__ import annotations

from lesions.models import DopplerSignal, Injection, UltrasoundMeasurement
from participants.models import PregnancyTest
from tests.exports.conftest import job_rows
from trial.exports.dictionary import FORMS, form_by_code


def test_dictionary_lists_every_data_field_of_a_form_from_the_model(data_manager, run_export):
    job = run_export(data_manager, "dictionary")
    rows = [r for r in job_rows(job) if r["form"] == "PREGNANCYTEST"]
    assert [r["field"] for r in rows] == ["test_type", "test_date", "result"]
    by_field = {r["field"]: r for r in rows}
    assert by_field["test_date"]["label"] == str(PregnancyTest._meta.get_field("test_date").verbose_name)
    assert by_field["test_date"]["type"] == "date"
    assert by_field["result"]["required"] == "yes"
    assert by_field["result"]["visits"] == "W0 W4 W8 W12 UNS"


def test_dictionary_gives_units_types_and_code_lists(data_manager, run_export):
    rows = {(r["form"], r["field"]): r for r in job_rows(run_export(data_manager, "dictionary"))}
    length = rows[("ULTRASOUNDMEASUREMENT", "length_mm")]
    assert (length["type"], length["unit"]) == ("float", "mm")
    assert rows[("ULTRASOUNDMEASUREMENT", "volume_mm3")]["unit"] == "mm3"
    assert rows[("INJECTION", "volume_ml")]["unit"] == "mL"
    assert rows[("INJECTION", "concentration_mg_per_ml")]["unit"] == "mg/mL"
    assert rows[("ULTRASOUNDMEASUREMENT", "doppler_signal")]["code_list"] == "; ".join(
        f"{code}={label}" for code, label in DopplerSignal.choices
    )
    assert rows[("ULTRASOUNDMEASUREMENT", "depth_mm")]["required"] == "no"
    assert rows[("ADVERSEEVENT", "onset_date")]["type"] == "partialDate"


def test_every_data_column_of_the_measurement_table_is_in_the_dictionary():
    spec = form_by_code("ultrasoundmeasurement")
    bookkeeping = {"id", "visit", "caliper_points", "row_version", "entered_by", "recorded_by"}
    expected = {
        f.name
        for f in UltrasoundMeasurement._meta.concrete_fields
        if f.name not in bookkeeping and not (f.is_relation and f.related_model._meta.label == "trial.User")
    }
    assert {f.name for f in spec.fields} == expected
    assert form_by_code("INJECTION").model is Injection
    assert len({spec.code for spec in FORMS}) == len(FORMS)
