from __future__ import annotations

import io

from lxml import etree

from lesions.models import Injection, UltrasoundMeasurement
from tests.exports.conftest import job_bytes
from trial.exports.odm import ODM_NS, odm_schema, validate_odm

NS = {"odm": ODM_NS}


def _parse(job):
    return etree.parse(io.BytesIO(job_bytes(job)))


def test_odm_export_validates_against_the_official_xsd(study_data, monitor, run_export):
    job = run_export(monitor, "odm", include_audit=True)
    assert job.status == "done", job.error
    document = _parse(job)
    assert odm_schema().validate(document), odm_schema().error_log
    root = document.getroot()
    assert root.tag == f"{{{ODM_NS}}}ODM"
    assert (root.get("ODMVersion"), root.get("FileType")) == ("1.3.2", "Snapshot")
    events = [e.get("OID") for e in root.iterfind(".//odm:StudyEventDef", NS)]
    assert events[:3] == ["SE.SCR", "SE.W0", "SE.W4"]
    length = root.find(".//odm:ItemDef[@OID='I.ULTRASOUNDMEASUREMENT.LENGTH_MM']", NS)
    assert length.get("DataType") == "float"
    assert length.find("odm:MeasurementUnitRef", NS).get("MeasurementUnitOID") == "MU.mm"
    codes = root.findall(
        ".//odm:CodeList[@OID='CL.ULTRASOUNDMEASUREMENT.DOPPLER_SIGNAL']/odm:CodeListItem", NS
    )
    assert codes


def test_odm_export_without_audit_records_validates_too(study_data, monitor, run_export):
    job = run_export(monitor, "odm")
    assert job.status == "done", job.error
    document = _parse(job)
    assert odm_schema().validate(document), odm_schema().error_log
    assert document.getroot().find(".//odm:AuditRecord", NS) is None
    assert job.row_count == len(document.getroot().findall(".//odm:ItemData", NS))


def test_odm_round_trips_the_measured_and_injected_values(study_data, monitor, coordinator, run_export):
    root = _parse(run_export(monitor, "odm", include_audit=True)).getroot()
    subject = root.find(f".//odm:SubjectData[@SubjectKey='{study_data.study_id}']", NS)
    w0 = subject.find("odm:StudyEventData[@StudyEventOID='SE.W0']", NS)
    for m in UltrasoundMeasurement.objects.all():
        form = w0.find(f"odm:FormData[@FormOID='F.ULTRASOUNDMEASUREMENT'][@FormRepeatKey='{m.pk}']", NS)
        items = {i.get("ItemOID"): i for i in form.iterfind(".//odm:ItemData", NS)}
        assert items["I.ULTRASOUNDMEASUREMENT.LENGTH_MM"].get("Value") == str(m.length_mm)
        assert items["I.ULTRASOUNDMEASUREMENT.WIDTH_MM"].get("Value") == str(m.width_mm)
        assert items["I.ULTRASOUNDMEASUREMENT.DOPPLER_SIGNAL"].get("Value") == m.doppler_signal
        audit = items["I.ULTRASOUNDMEASUREMENT.LENGTH_MM"].find("odm:AuditRecord", NS)
        assert audit.find("odm:UserRef", NS).get("UserOID") == f"USR.{coordinator.pk}"
        assert audit.find("odm:LocationRef", NS).get("LocationOID") == "LOC.A1"
    doses = sorted(
        i.get("Value") for i in w0.iterfind(".//odm:ItemData[@ItemOID='I.INJECTION.VOLUME_ML']", NS)
    )
    assert doses == sorted(str(v) for v in Injection.objects.values_list("volume_ml", flat=True))


def test_a_document_breaking_the_schema_is_reported():
    broken = b'<ODM xmlns="http://www.cdisc.org/ns/odm/v1.3" ODMVersion="1.3.2"><Nonsense/></ODM>'
    assert validate_odm(io.BytesIO(broken))


def test_odm_carries_the_visit_signature_with_its_meaning(study_data, investigator, monitor, run_export):
    from tests.signatures.test_signing import sign

    (signature,) = sign(investigator, study_data.visits.get(code="W0"))
    document = _parse(run_export(monitor, "odm", include_audit=True))
    assert odm_schema().validate(document), odm_schema().error_log
    root = document.getroot()
    w0 = root.find(".//odm:StudyEventData[@StudyEventOID='SE.W0']", NS)
    element = w0.find("odm:Signature", NS)
    assert element.find("odm:UserRef", NS).get("UserOID") == f"USR.{investigator.pk}"
    ref = element.find("odm:SignatureRef", NS).get("SignatureOID")
    meaning = root.find(f".//odm:SignatureDef[@OID='{ref}']/odm:Meaning", NS).text
    assert meaning == signature.get_meaning_display()


def test_an_error_deep_inside_an_exported_file_is_reported(study_data, monitor, run_export):
    data = job_bytes(run_export(monitor, "odm"))
    assert validate_odm(io.BytesIO(data)) == []
    broken = data.replace(b'ItemOID="I.ULTRASOUNDMEASUREMENT.LENGTH_MM"', b'ItemOIDX="x"', 1)
    errors = validate_odm(io.BytesIO(broken))
    assert errors and "ItemOID" in " ".join(errors)
