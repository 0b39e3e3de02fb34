"""CDISC ODM 1.3.2 snapshot: study metadata generated from the model fields (events from the
protocol schedule, forms, item groups, items, code lists) and the clinical data, optionally with
an AuditRecord per value. Written incrementally with lxml's `xmlfile`, participant by participant
(`subject_records` reads each form once, in study id order), and validated against the official
ODM 1.3.2 XSD shipped by odmlib."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import BinaryIO

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from lxml import etree

from trial.exports.dictionary import FORMS, DataType, ExportField, FormSpec, visits_for_form
from trial.exports.records import (
    BATCH_SIZE,
    EMPTY,
    PARTICIPANTS_PER_BATCH,
    Record,
    form_records,
    format_value,
    in_batches,
)
from trial.models import Site, User
from trial.protocol import PROTOCOL, VisitKind
from trial.signatures.models import Signature, SignatureMeaning, SignatureStatus

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
ODM_VERSION = "1.3.2"
STUDY_EVENT = "STUDY"  # forms not collected at a visit (enrolment, lesions, deviations)
SYSTEM_USER = "USR.SYSTEM"


def study_oid() -> str:
    return f"ST.{PROTOCOL.code}"


def mdv_oid() -> str:
    return f"MDV.{PROTOCOL.version}"


def event_oid(code: str) -> str:
    return f"SE.{code}"


def form_oid(spec: FormSpec) -> str:
    return f"F.{spec.code}"


def group_oid(spec: FormSpec) -> str:
    return f"IG.{spec.code}"


def item_oid(f: ExportField) -> str:
    return f"I.{f.form.code}.{f.name.upper()}"


def codelist_oid(f: ExportField) -> str:
    return f"CL.{f.form.code}.{f.name.upper()}"


def _has_codelist(f: ExportField) -> bool:
    # A multiple choice is exported as "a;b", which no single code matches.
    return bool(f.choices) and not isinstance(f.field, ArrayField)


@cache
def odm_schema() -> etree.XMLSchema:
    path = resources.files("odmlib") / "schemas" / "odm" / "1.3.2" / "ODM1-3-2.xsd"
    with resources.as_file(path) as xsd:
        return etree.XMLSchema(etree.parse(str(xsd)))


def validate_odm(source) -> list[str]:
    """Schema errors of an ODM file (path or file object); empty when it is valid.

    Validates while parsing (libxml2's streaming XSD validation) and drops each element once it
    has been read, so a whole-study file is checked in constant memory, not as one tree."""
    try:
        for _event, element in etree.iterparse(source, events=("end",), schema=odm_schema(), huge_tree=True):
            element.clear(keep_tail=True)
            while element.getprevious() is not None:
                del element.getparent()[0]
    except etree.XMLSyntaxError as error:
        errors = [f"line {e.line}: {e.message}" for e in error.error_log] or [str(error)]
        return errors
    return []


def _el(tag: str) -> str:
    return f"{{{ODM_NS}}}{tag}"


def _translated(parent_tag: str, text: str) -> etree._Element:
    outer = etree.Element(_el(parent_tag))
    etree.SubElement(
        outer, _el("TranslatedText"), {"{http://www.w3.org/XML/1998/namespace}lang": "en"}
    ).text = text
    return outer


def _events() -> list[tuple[str, str, str, bool]]:
    """(code, name, ODM type, repeating) of the study events."""
    events = []
    for visit in (*PROTOCOL.schedule, PROTOCOL.unscheduled_visit):
        unscheduled = visit.kind == VisitKind.UNSCHEDULED
        events.append(
            (visit.code, str(visit.name), "Unscheduled" if unscheduled else "Scheduled", unscheduled)
        )
    events.append((STUDY_EVENT, "Study (not at a visit)", "Common", False))
    return events


def _forms_of_event(code: str) -> list[FormSpec]:
    if code == STUDY_EVENT:
        return [spec for spec in FORMS if spec.visit_path is None or _visit_optional(spec)]
    return [spec for spec in FORMS if code in visits_for_form(spec)]


def _visit_optional(spec: FormSpec) -> bool:
    if not spec.visit_path:
        return False
    field = spec.model._meta.get_field(spec.visit_path.split("__")[0])
    return field.null


def metadata_elements() -> list[etree._Element]:
    """GlobalVariables, BasicDefinitions and MetaDataVersion, from the protocol and the models."""
    glob = etree.Element(_el("GlobalVariables"))
    etree.SubElement(glob, _el("StudyName")).text = PROTOCOL.code
    etree.SubElement(glob, _el("StudyDescription")).text = str(PROTOCOL.title)
    etree.SubElement(glob, _el("ProtocolName")).text = f"{PROTOCOL.code} v{PROTOCOL.version}"

    units = sorted({f.unit for spec in FORMS for f in spec.fields if f.unit})
    basic = etree.Element(_el("BasicDefinitions"))
    for unit in units:
        mu = etree.SubElement(basic, _el("MeasurementUnit"), OID=f"MU.{unit}", Name=unit)
        mu.append(_translated("Symbol", unit))

    mdv = etree.Element(_el("MetaDataVersion"), OID=mdv_oid(), Name=f"Protocol version {PROTOCOL.version}")
    protocol = etree.SubElement(mdv, _el("Protocol"))
    events = _events()
    for order, (code, _name, _type, _rep) in enumerate(events, start=1):
        etree.SubElement(
            protocol,
            _el("StudyEventRef"),
            StudyEventOID=event_oid(code),
            OrderNumber=str(order),
            Mandatory="No",
        )
    for code, name, kind, repeating in events:
        sed = etree.SubElement(
            mdv,
            _el("StudyEventDef"),
            OID=event_oid(code),
            Name=name,
            Repeating="Yes" if repeating else "No",
            Type=kind,
        )
        for order, spec in enumerate(_forms_of_event(code), start=1):
            etree.SubElement(
                sed, _el("FormRef"), FormOID=form_oid(spec), OrderNumber=str(order), Mandatory="No"
            )
    for spec in FORMS:
        fd = etree.SubElement(mdv, _el("FormDef"), OID=form_oid(spec), Name=spec.label, Repeating="Yes")
        etree.SubElement(fd, _el("ItemGroupRef"), ItemGroupOID=group_oid(spec), Mandatory="Yes")
    for spec in FORMS:
        ig = etree.SubElement(mdv, _el("ItemGroupDef"), OID=group_oid(spec), Name=spec.label, Repeating="No")
        for order, f in enumerate(spec.fields, start=1):
            etree.SubElement(
                ig,
                _el("ItemRef"),
                ItemOID=item_oid(f),
                OrderNumber=str(order),
                Mandatory="Yes" if f.required else "No",
            )
    for spec in FORMS:
        for f in spec.fields:
            attrs = {"OID": item_oid(f), "Name": f"{spec.code}.{f.name}", "DataType": f.data_type}
            if f.data_type == DataType.TEXT and getattr(f.field, "max_length", None) and not f.choices:
                attrs["Length"] = str(f.field.max_length)
            item = etree.SubElement(mdv, _el("ItemDef"), attrs)
            item.append(_translated("Question", f.label))
            if f.unit:
                etree.SubElement(item, _el("MeasurementUnitRef"), MeasurementUnitOID=f"MU.{f.unit}")
            if _has_codelist(f):
                etree.SubElement(item, _el("CodeListRef"), CodeListOID=codelist_oid(f))
    for spec in FORMS:
        for f in spec.fields:
            if not _has_codelist(f):
                continue
            data_type = "integer" if f.data_type == DataType.INTEGER else "text"
            cl = etree.SubElement(mdv, _el("CodeList"), OID=codelist_oid(f), Name=f.label, DataType=data_type)
            for code, label in f.choices:
                cli = etree.SubElement(cl, _el("CodeListItem"), CodedValue=code)
                cli.append(_translated("Decode", label))
    return [glob, basic, mdv]


def _admin_data() -> etree._Element:
    admin = etree.Element(_el("AdminData"), StudyOID=study_oid())
    system = etree.SubElement(admin, _el("User"), OID=SYSTEM_USER)
    etree.SubElement(system, _el("FullName")).text = "System (no application user)"
    for user in User._base_manager.order_by("pk").iterator(chunk_size=BATCH_SIZE):
        el = etree.SubElement(admin, _el("User"), OID=f"USR.{user.pk}")
        etree.SubElement(el, _el("FullName")).text = user.audit_name
    for site in Site.objects.order_by("code"):
        loc = etree.SubElement(admin, _el("Location"), OID=f"LOC.{site.code}", Name=site.name)
        etree.SubElement(
            loc,
            _el("MetaDataVersionRef"),
            StudyOID=study_oid(),
            MetaDataVersionOID=mdv_oid(),
            EffectiveDate=timezone.now().date().isoformat(),
        )
    # 21 CFR 11.50: each signature states its meaning; one SignatureDef per meaning.
    for code, label in SignatureMeaning.choices:
        sd = etree.SubElement(
            admin, _el("SignatureDef"), OID=signature_def_oid(code), Methodology="Electronic"
        )
        etree.SubElement(sd, _el("Meaning")).text = str(label)
        etree.SubElement(sd, _el("LegalReason")).text = "21 CFR Part 11 electronic signature"
    return admin


def signature_def_oid(meaning: str) -> str:
    return f"SD.{meaning.upper()}"


def _signature_element(signature, site_code: str) -> etree._Element:
    sig = etree.Element(_el("Signature"))
    etree.SubElement(sig, _el("UserRef"), UserOID=f"USR.{signature.signer_id}")
    etree.SubElement(sig, _el("LocationRef"), LocationOID=f"LOC.{site_code}")
    etree.SubElement(sig, _el("SignatureRef"), SignatureOID=signature_def_oid(signature.meaning))
    etree.SubElement(sig, _el("DateTimeStamp")).text = signature.signed_at.astimezone(dt.UTC).isoformat()
    return sig


def _event_key(record: Record) -> tuple[int, str, str]:
    if record.visit is None:
        return (-1, STUDY_EVENT, "")
    return (record.visit.sequence, record.visit.definition_code, record.visit.code)


_AUDIT_RECORD, _USER_REF, _LOCATION_REF = _el("AuditRecord"), _el("UserRef"), _el("LocationRef")
_DATE_TIME_STAMP, _REASON = _el("DateTimeStamp"), _el("ReasonForChange")
_STUDY_EVENT_DATA, _FORM_DATA = _el("StudyEventData"), _el("FormData")
_ITEM_GROUP_DATA, _ITEM_DATA = _el("ItemGroupData"), _el("ItemData")


def _audit_record(record: Record, f: ExportField) -> etree._Element | None:
    entered = record.entered.get(f.name)
    if entered is None or entered.at is None:
        return None
    ar = etree.Element(_AUDIT_RECORD)
    etree.SubElement(ar, _USER_REF, UserOID=f"USR.{entered.user_id}" if entered.user_id else SYSTEM_USER)
    etree.SubElement(ar, _LOCATION_REF, LocationOID=f"LOC.{record.site_code}")
    etree.SubElement(ar, _DATE_TIME_STAMP).text = entered.at.astimezone(dt.UTC).isoformat()
    if entered.reason:
        etree.SubElement(ar, _REASON).text = entered.reason
    return ar


class _FormPlan:
    """What a form's records need, worked out once per export: OIDs and (position, field, OID)
    of each item."""

    def __init__(self, spec: FormSpec):
        self.form_oid = form_oid(spec)
        self.group_oid = group_oid(spec)
        self.items = [(i, f, item_oid(f)) for i, f in enumerate(spec.fields)]


def _subject_element(
    subject: Subject,
    records: list[Record],
    *,
    include_audit: bool,
    signatures: dict | None = None,
    plans: dict[FormSpec, _FormPlan],
) -> tuple[etree._Element, int]:
    """The participant's SubjectData and how many ItemData it holds."""
    pk, study_id, site_code = subject
    values = 0
    element = etree.Element(_el("SubjectData"), SubjectKey=study_id)
    if include_audit:  # SiteRef points into AdminData, written only with the audit records
        etree.SubElement(element, _el("SiteRef"), LocationOID=f"LOC.{site_code}")
    by_event: dict[tuple, list[Record]] = defaultdict(list)
    for record in records:
        by_event[_event_key(record)].append(record)
    for (_seq, definition, code), event_records in sorted(by_event.items()):
        attrs = {"StudyEventOID": event_oid(definition)}
        if definition == PROTOCOL.unscheduled_visit.code:
            attrs["StudyEventRepeatKey"] = code
        sed = etree.SubElement(element, _STUDY_EVENT_DATA, attrs)
        signature = (signatures or {}).get((pk, code)) if include_audit else None
        if signature is not None:  # the visit's standing e-signature
            sed.append(_signature_element(signature, site_code))
        for record in event_records:
            plan = plans[record.spec]
            fd = etree.SubElement(sed, _FORM_DATA, FormOID=plan.form_oid, FormRepeatKey=str(record.pk))
            ig = etree.SubElement(fd, _ITEM_GROUP_DATA, ItemGroupOID=plan.group_oid)
            row = record.values
            for i, f, oid in plan.items:
                value = row[i]
                if value in EMPTY:
                    continue
                item = etree.SubElement(ig, _ITEM_DATA, ItemOID=oid, Value=format_value(f, value))
                values += 1
                if include_audit and (ar := _audit_record(record, f)) is not None:
                    item.append(ar)
    return element, values


def _valid_signatures(participant_ids: list[int]) -> dict[tuple[int, str], object]:
    """(participant id, visit code) -> the visit's valid signature."""
    rows = Signature.objects.filter(
        visit__participant_id__in=participant_ids, status=SignatureStatus.VALID
    ).select_related("visit")
    return {(s.visit.participant_id, s.visit.code): s for s in rows}


Subject = tuple[int, str, str]  # participant id, study id, site code


def subject_records(
    participants: models.QuerySet, *, provenance: bool = True
) -> Iterator[tuple[Subject, list[Record]]]:
    """Each participant, in study id order, with its records of every form (in FORMS order, then
    by id).

    One stream per form, ordered by study id like the participants, read side by side: the
    queries do not grow with the participants (a query per participant batch ran a hash join
    over whole tables each time). Only the participants' ids, study ids and sites are held (a
    few hundred bytes each); a record of a participant the list does not have (enrolled while the
    export ran) is skipped."""
    subjects: list[Subject] = list(
        participants.order_by("study_id")
        .values_list("pk", "study_id", "site__code")
        .iterator(chunk_size=2000)
    )
    rank = {pk: n for n, (pk, _study_id, _site) in enumerate(subjects)}
    streams = [form_records(spec, participants, by_participant=True, provenance=provenance) for spec in FORMS]
    heads = [next(stream, None) for stream in streams]
    for n, subject in enumerate(subjects):
        records: list[Record] = []
        for s, stream in enumerate(streams):
            head = heads[s]
            while head is not None and rank.get(head.participant.pk, -1) < n:
                head = next(stream, None)
            while head is not None and head.participant.pk == subject[0]:
                records.append(head)
                head = next(stream, None)
            heads[s] = head
        yield subject, records


def write_odm(
    out: BinaryIO, *, participants: models.QuerySet, include_audit: bool = False, progress=None, **_kw
) -> int:
    """Write the snapshot to `out` (binary); returns the number of ItemData written."""
    values = 0
    done = 0
    now = timezone.now().astimezone(dt.UTC).isoformat()
    plans = {spec: _FormPlan(spec) for spec in FORMS}
    with etree.xmlfile(out, encoding="UTF-8") as xf:
        xf.write_declaration()
        odm_attrs = {
            "FileType": "Snapshot",
            "FileOID": f"EXPORT.{PROTOCOL.code}.{timezone.now():%Y%m%dT%H%M%S%f}",
            "CreationDateTime": now,
            "ODMVersion": ODM_VERSION,
            "Granularity": "All",
            "SourceSystem": "Calcinosis trial EDC",
        }
        with xf.element(_el("ODM"), odm_attrs, nsmap={None: ODM_NS}):
            study = etree.Element(_el("Study"), OID=study_oid())
            for element in metadata_elements():
                study.append(element)
            xf.write(study)
            if include_audit:
                xf.write(_admin_data())
            with xf.element(_el("ClinicalData"), StudyOID=study_oid(), MetaDataVersionOID=mdv_oid()):
                for batch in in_batches(
                    subject_records(participants, provenance=include_audit), PARTICIPANTS_PER_BATCH
                ):
                    signatures = (
                        _valid_signatures([subject[0] for subject, _ in batch]) if include_audit else {}
                    )
                    for subject, records in batch:
                        element, count = _subject_element(
                            subject, records, include_audit=include_audit, signatures=signatures, plans=plans
                        )
                        values += count
                        xf.write(element)
                        done += 1
                        if progress:
                            progress(done)
    return values
