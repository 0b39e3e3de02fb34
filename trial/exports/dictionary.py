"""The exported case report forms and their data dictionary, generated from the model fields.

ARCHITECTURE.md "Case report forms": labels, types, units and code lists come from the models;
the CSV headers, the dictionary and the ODM metadata all read `FORMS` and `form_fields()`, never a
second hand-kept copy.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils.text import capfirst

from lesions.models import Injection, Lesion, UltrasoundMeasurement
from participants.models import AdverseEvent, AEReview, Participant, PregnancyTest, ProtocolDeviation, Visit
from pro_measures.models import Score
from trial.partial_dates import PartialDateField
from trial.protocol import PROTOCOL, Form

# A unit is the last parenthesised token of a label or help text when it looks like a unit:
# "(mm)", "(mL)", "(mg/mL)", "(mm3)", "(0-10)"; "(if other)" or "(describe)" are not units.
_UNIT_RE = re.compile(r"\(([^()\s]{1,12})\)\s*\.?$")
_UNIT_TOKEN_RE = re.compile(r"^(?:[a-zA-Zµ%³²]{1,4}(?:/[a-zA-Z]{1,4})?\d?|\d+-\d+)$")
# Names that carry their unit when the label does not (depth_mm, volume_ml).
_NAME_UNITS = {"_mm": "mm", "_mm3": "mm3", "_ml": "mL", "_mg": "mg", "_mg_per_ml": "mg/mL"}
_NOT_UNITS = {"if", "e.g", "etc"}


class DataType:
    """Dictionary types, spelled as ODM 1.3.2 DataType values so one table serves both."""

    TEXT = "text"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    DATETIME = "datetime"
    PARTIAL_DATE = "partialDate"


@dataclass(frozen=True)
class FormSpec:
    """One exported CRF: its model and how a record reaches its participant and visit."""

    model: type[models.Model]
    participant_path: str  # "" when the model is Participant itself
    visit_path: str | None = None  # None when the form is not collected at a visit
    context_fields: tuple[str, ...] = ()  # foreign keys given by the row's context columns
    protocol_form: Form | None = None  # which visits expect it (trial.protocol); None: any visit

    @property
    def code(self) -> str:
        return self.model._meta.model_name.upper()

    @property
    def label(self) -> str:
        return capfirst(str(self.model._meta.verbose_name))  # "STS injection", not "Sts injection"

    @cached_property
    def fields(self) -> tuple[ExportField, ...]:
        return tuple(form_fields(self))

    @cached_property
    def field_index(self) -> dict[str, int]:
        """Field name -> its position in `fields` (and in a `records.Record`'s values)."""
        return {f.name: i for i, f in enumerate(self.fields)}

    def field(self, name: str) -> ExportField:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True)
class ExportField:
    form: FormSpec
    field: models.Field

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def attname(self) -> str:
        return self.field.attname

    @property
    def label(self) -> str:
        return str(self.field.verbose_name)

    @cached_property  # the model field's class decides it: read once per row would cost per row
    def data_type(self) -> str:
        return data_type_of(self.field)

    @property
    def unit(self) -> str:
        return unit_of(self.field)

    @property
    def choices(self) -> list[tuple[str, str]]:
        base = self.field.base_field if isinstance(self.field, ArrayField) else self.field
        return [(str(code), str(label)) for code, label in (base.flatchoices or [])]

    @property
    def required(self) -> bool:
        if isinstance(self.field, models.GeneratedField):
            return False
        if isinstance(self.field, models.BooleanField):
            return not self.field.null
        return not (self.field.blank or self.field.null)

    @property
    def is_date(self) -> bool:
        return self.data_type in (DataType.DATE, DataType.DATETIME, DataType.PARTIAL_DATE)

    @property
    def is_free_text(self) -> bool:
        """Typed text a person wrote (descriptions, "other" terms, names of operators): left out
        of de-identified exports unless chosen."""
        if self.choices or self.data_type != DataType.TEXT or isinstance(self.field, ArrayField):
            return False
        return isinstance(self.field, models.TextField) or (self.field.max_length or 0) > 100

    @property
    def is_identifying(self) -> bool:
        """HIPAA Safe Harbor names, contact details, signatures and record numbers."""
        listed = self.name in getattr(self.form.model, "IDENTIFYING_FIELDS", ())
        kind = isinstance(self.field, models.EmailField) or any(
            word in self.name for word in ("email", "phone", "signature", "record_number", "address")
        )
        return listed or kind


def data_type_of(field: models.Field) -> str:
    if isinstance(field, models.GeneratedField):
        field = field.output_field
    if isinstance(field, PartialDateField):
        return DataType.PARTIAL_DATE
    if isinstance(field, models.BooleanField):
        return DataType.BOOLEAN
    if isinstance(field, models.DateTimeField):
        return DataType.DATETIME
    if isinstance(field, models.DateField):
        return DataType.DATE
    if isinstance(field, models.DecimalField | models.FloatField):
        return DataType.FLOAT
    if isinstance(field, models.IntegerField | models.ForeignKey) and not isinstance(field, ArrayField):
        return DataType.INTEGER
    return DataType.TEXT


def unit_of(field: models.Field) -> str:
    for text in (str(field.verbose_name), str(field.help_text or "")):
        match = _UNIT_RE.search(text)
        if match and match.group(1).lower() not in _NOT_UNITS and _UNIT_TOKEN_RE.match(match.group(1)):
            return match.group(1)
    for suffix, unit in sorted(_NAME_UNITS.items(), key=lambda kv: -len(kv[0])):
        if field.name.endswith(suffix):
            return unit
    return ""


def _exported(field: models.Field, spec: FormSpec) -> bool:
    if field.primary_key or not field.concrete or field.name in spec.context_fields:
        return False
    if isinstance(field, models.JSONField | models.FileField):
        return False  # caliper points, answers, files: their own exports (DICOM, FHIR)
    if field.name == "row_version":
        return False  # optimistic-locking bookkeeping, not data
    if field.is_relation and field.related_model._meta.label == "trial.User":
        return False  # who entered or reviewed: the audit columns say so
    return True


def form_fields(spec: FormSpec) -> Iterator[ExportField]:
    for field in spec.model._meta.concrete_fields:
        if _exported(field, spec):
            yield ExportField(spec, field)


FORMS: tuple[FormSpec, ...] = (
    FormSpec(Participant, "", None, ("screening", "site")),
    FormSpec(Visit, "participant", "", ("participant",)),
    FormSpec(PregnancyTest, "participant", "visit", ("participant", "visit"), Form.PREGNANCY_TEST),
    FormSpec(AEReview, "visit__participant", "visit", ("visit",), Form.AE_REVIEW),
    FormSpec(AdverseEvent, "participant", "reported_at_visit", ("participant", "reported_at_visit")),
    FormSpec(ProtocolDeviation, "participant", None, ("participant", "site")),
    FormSpec(Lesion, "participant", None, ("participant",)),
    FormSpec(UltrasoundMeasurement, "lesion__participant", "visit", ("visit",), Form.MEASUREMENTS),
    FormSpec(Injection, "lesion__participant", "visit", ("visit",), Form.INJECTIONS),
    FormSpec(Score, "response__invitation__participant", "response__invitation__visit", (), Form.PROS),
)


def visits_for_form(spec: FormSpec) -> list[str]:
    """Codes of the protocol visits at which the form is collected (empty: not at a visit)."""
    if spec.visit_path is None:
        return []
    visits = (*PROTOCOL.schedule, PROTOCOL.unscheduled_visit)
    return [v.code for v in visits if spec.protocol_form is None or spec.protocol_form in v.forms]


def form_by_code(code: str) -> FormSpec | None:
    return next((f for f in FORMS if f.code == str(code).upper()), None)


DICTIONARY_HEADER = (
    "form",
    "form_label",
    "field",
    "label",
    "type",
    "unit",
    "code_list",
    "required",
    "visits",
)


def dictionary_rows() -> Iterator[tuple[str, ...]]:
    """One row per exported field: the data dictionary as a table."""
    for spec in FORMS:
        visits = " ".join(visits_for_form(spec))
        for f in spec.fields:
            code_list = "; ".join(f"{code}={label}" for code, label in f.choices)
            yield (
                spec.code,
                spec.label,
                f.name,
                f.label,
                f.data_type,
                f.unit,
                code_list,
                "yes" if f.required else "no",
                visits,
            )
