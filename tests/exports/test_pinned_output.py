"""The exports' content is pinned to a plain reference reading (model instances, one attribute at
a time, as the exports read the data before issue #9 made them fast): the streaming writers must
give the same file, byte for byte, cell for cell - same columns, order and values - including the
provenance of a value changed after entry and a cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest
from django.utils import timezone

from lesions import services as lesion_services
from lesions.models import Lesion
from participants.models import Participant
from tests.trial.test_synthetic import demo  # noqa: F401 - the demo data fixture
from trial.audit import DELETE, event_model_for
from trial.exports import csv_export
from trial.exports.deidentify import Deidentifier
from trial.exports.dictionary import FORMS, form_by_code
from trial.exports.records import UserNames, format_timestamp, format_value
from trial.synthetic import synthetic_seed


def _follow(obj, path):
    if path is None:
        return None
    if path == "":
        return obj
    for part in path.split("__"):
        obj = getattr(obj, part)
        if obj is None:
            return None
    return obj


def reference_records(spec, participants):
    """(record, participant, visit, {field name: (at, user id)}) from model instances, in id order."""
    pid = f"{spec.participant_path}__pk" if spec.participant_path else "pk"
    objects = spec.model._default_manager.filter(**{f"{pid}__in": participants.values("pk")}).order_by("pk")
    event_model = event_model_for(spec.model)
    columns = {f.attname for f in event_model._meta.concrete_fields}
    tracked = [f for f in spec.fields if f.attname in columns]
    for obj in objects:
        entered, before = {}, None
        for event in (
            event_model.objects.filter(pgh_obj_id=obj.pk).exclude(pgh_label=DELETE).order_by("pgh_id")
        ):
            ctx = event.pgh_context or {}
            for f in tracked:
                if before is None or getattr(before, f.attname) != getattr(event, f.attname):
                    entered[f.name] = (event.pgh_created_at, ctx.get("user"))
            before = event
        yield obj, _follow(obj, spec.participant_path), _follow(obj, spec.visit_path), entered


def reference_long(participants, deidentifier=None) -> str:
    out = io.StringIO()
    writer = csv_export.SafeWriter(out)
    writer.header(csv_export.LONG_HEADER)
    names = UserNames()
    for spec in FORMS:
        fields = [f for f in spec.fields if deidentifier is None or deidentifier.keeps(f)]
        for obj, participant, visit, entered in reference_records(spec, participants):
            visit_code = visit.code if visit else ""
            as_record = SimpleNamespace(spec=spec, participant=participant)  # what the deidentifier reads
            for f in fields:
                value = getattr(obj, f.attname)
                if value in (None, "", []):
                    continue
                at, user_id = entered.get(f.name, (None, None))
                if deidentifier is None:
                    cells = (
                        participant.study_id,
                        participant.site.code,
                        visit_code,
                        spec.code,
                        obj.pk,
                        f.name,
                    )
                    cells += (format_value(f, value), f.unit, format_timestamp(at), names(user_id))
                else:
                    cells = (deidentifier.subject_key(participant), participant.site.code, visit_code)
                    cells += (spec.code, obj.pk, f.name, deidentifier.value(as_record, f, value))
                    unit = "study day" if f.is_date and f.data_type != "partialDate" else f.unit
                    cells += (unit, deidentifier.study_day(participant, at) if f.name in entered else "", "")
                writer.row(cells)
            if deidentifier is not None:
                for name, value in deidentifier.derived(as_record):
                    writer.row(
                        (deidentifier.subject_key(participant), participant.site.code, visit_code)
                        + (spec.code, obj.pk, name, value, "years", "", "")
                    )
    return out.getvalue()


def reference_wide(participants, form) -> str:
    out = io.StringIO()
    writer = csv_export.SafeWriter(out)
    writer.header(("study_id", "site", "visit", "record_id", *(f.name for f in form.fields)))
    for obj, participant, visit, _entered in reference_records(form, participants):
        writer.row(
            (participant.study_id, participant.site.code, visit.code if visit else "", obj.pk)
            + tuple(format_value(f, getattr(obj, f.attname)) for f in form.fields)
        )
    return out.getvalue()


def written(writer, **kwargs) -> str:
    out = io.StringIO()
    writer(out, progress=lambda done: None, **kwargs)
    return out.getvalue()


def assert_same_csv(actual: str, expected: str) -> None:
    rows, reference = list(csv.reader(io.StringIO(actual))), list(csv.reader(io.StringIO(expected)))
    assert len(rows) == len(reference)
    for row, expected_row in zip(rows, reference, strict=True):
        assert row == expected_row
    assert actual == expected  # and byte for byte (quoting, line ends)


@pytest.fixture
def edited(study_data, coordinator):
    """A lesion changed after entry (new provenance for two fields) and given a formula."""
    lesion = Lesion.objects.get(label="L2")
    lesion_services.lesion_update(
        actor=coordinator,
        lesion=lesion,
        data={"laterality": "right", "site_detail": '=HYPERLINK("http://x.test","y")'},
        reason="side mistyped",
        expected_version=lesion.row_version,
    )
    return study_data


def test_long_export_is_the_reference_reading(edited, monitor):
    participants = Participant.objects.visible_to(monitor)
    actual = written(csv_export.write_long, participants=participants)
    assert "'=HYPERLINK" in actual and "right" in actual
    assert_same_csv(actual, reference_long(participants))


def test_long_export_quotes_cells_as_the_csv_module_does(edited, coordinator, monitor):
    """The long format's lines are joined by hand: a value with a comma, a quote or a line
    break, and a person whose audit name holds a comma and quotes, read back as they were."""
    coordinator.full_name = 'Coordinator, Casey "CC"'
    coordinator.save(update_fields=["full_name"])
    lesion = Lesion.objects.get(label="L2")
    detail = 'ulnar side, "dorsal"\r\nnear the nail'
    lesion_services.lesion_update(
        actor=coordinator,
        lesion=lesion,
        data={"site_detail": detail},
        reason="site described",
        expected_version=lesion.row_version,
    )
    participants = Participant.objects.visible_to(monitor)
    actual = written(csv_export.write_long, participants=participants)
    rows = list(csv.reader(io.StringIO(actual)))
    detail_row = next(row for row in rows if row[3] == "LESION" and row[5] == "site_detail")
    assert detail_row[6] == detail
    assert detail_row[9] == f'Coordinator, Casey "CC" <{coordinator.email}>'
    assert_same_csv(actual, reference_long(participants))


def test_deidentified_and_wide_exports_are_the_reference_reading(edited, data_manager):
    participants = Participant.objects.visible_to(data_manager)
    deidentifier = Deidentifier(participants)
    actual = written(csv_export.write_long, participants=participants, deidentifier=deidentifier)
    assert_same_csv(actual, reference_long(participants, deidentifier))
    for code in ("LESION", "ULTRASOUNDMEASUREMENT", "VISIT"):
        form = form_by_code(code)
        assert_same_csv(
            written(csv_export.write_wide, participants=participants, form=form),
            reference_wide(participants, form),
        )


def test_long_export_of_the_synthetic_trial_is_the_reference_reading(demo, data_manager):  # noqa: F811
    synthetic_seed(participants=4, seed=11, base_date=timezone.now().date())
    participants = Participant.objects.visible_to(data_manager)
    actual = written(csv_export.write_long, participants=participants)
    assert actual.count("\r\n") > 500  # every form of several participants
    assert_same_csv(actual, reference_long(participants))


def test_odm_export_holds_the_reference_values_subject_by_subject(edited, data_manager):
    from lxml import etree

    from trial.exports import odm

    participants = Participant.objects.visible_to(data_manager)
    out = io.BytesIO()
    written_values = odm.write_odm(out, participants=participants, include_audit=True)
    ns = {"odm": odm.ODM_NS}
    root = etree.fromstring(out.getvalue())
    actual = []
    subjects = root.findall(".//odm:SubjectData", ns)
    for subject in subjects:
        for form in subject.iterfind(".//odm:FormData", ns):
            for item in form.iterfind(".//odm:ItemData", ns):
                user = item.find("odm:AuditRecord/odm:UserRef", ns)
                actual.append(
                    (subject.get("SubjectKey"), form.get("FormOID"), int(form.get("FormRepeatKey")))
                    + (
                        item.get("ItemOID"),
                        item.get("Value"),
                        user.get("UserOID") if user is not None else None,
                    )
                )
    expected = []
    for spec in FORMS:
        for obj, participant, _visit, entered in reference_records(spec, participants):
            for f in spec.fields:
                value = getattr(obj, f.attname)
                if value in (None, "", []):
                    continue
                at, user_id = entered.get(f.name, (None, None))
                user = (f"USR.{user_id}" if user_id else odm.SYSTEM_USER) if at else None
                expected.append(
                    (
                        participant.study_id,
                        odm.form_oid(spec),
                        obj.pk,
                        odm.item_oid(f),
                        format_value(f, value),
                        user,
                    )
                )
    assert written_values == len(actual) == len(expected) > 20
    assert any(user not in (None, odm.SYSTEM_USER) for *_cells, user in actual)  # who entered
    assert sorted(actual) == sorted(expected)
    keys = [subject.get("SubjectKey") for subject in subjects]
    assert keys == sorted(participants.values_list("study_id", flat=True))  # every participant, in order
    # A subject's values all sit in its one SubjectData, in form order within each visit.
    assert len(set(keys)) == len(keys)
