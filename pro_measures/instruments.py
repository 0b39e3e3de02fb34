"""Questionnaire definitions (DOMAIN.md s.5): data, not schema.

An instrument is a typed definition (code, version, title, recall period, sections of items with
their response options or scale ends, a scoring function, a licence note). Answers are stored per
response keyed by item `link_id` (the FHIR linkId) with the instrument code and version; scores
go to typed columns. Adding an instrument is adding a definition to `INSTRUMENTS`: no migration.
Each scoring function lives in `pro_measures.scoring` and is tested against hand-worked examples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from pro_measures import scoring


class ItemKind(StrEnum):
    CHOICE = "choice"  # one of the options (FHIR "choice" / integer answers)
    NUMERIC_SCALE = "scale"  # an integer from min to max, shown as numbered buttons (NRS)
    VISUAL_ANALOGUE = "vas"  # a point on a line from min to max (slider), with end anchors
    BOOLEAN = "boolean"  # yes / no


@dataclass(frozen=True)
class Option:
    value: int
    label: str


@dataclass(frozen=True)
class Item:
    link_id: str
    text: str
    kind: ItemKind
    options: tuple[Option, ...] = ()
    minimum: int = 0
    maximum: int = 0
    low_anchor: str = ""
    high_anchor: str = ""
    unit: str = ""
    required: bool = False

    def valid(self, value: Any) -> bool:
        if self.kind == ItemKind.BOOLEAN:
            return isinstance(value, bool)
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        if self.kind == ItemKind.CHOICE:
            return value in {o.value for o in self.options}
        return self.minimum <= value <= self.maximum


@dataclass(frozen=True)
class Section:
    code: str
    title: str
    items: tuple[Item, ...]
    help_text: str = ""


@dataclass(frozen=True)
class ScoreDefinition:
    name: str  # stored as the score's name, e.g. "haq_di"
    label: str
    minimum: Decimal
    maximum: Decimal
    lower_is_better: bool = True


@dataclass(frozen=True)
class Instrument:
    code: str
    version: str
    title: str
    recall_period: str
    licence_note: str
    sections: tuple[Section, ...]
    scores: tuple[ScoreDefinition, ...]
    score: Callable[[Mapping[str, Any]], dict[str, Decimal | None]] = field(repr=False)
    introduction: str = ""

    @property
    def items(self) -> tuple[Item, ...]:
        return tuple(item for section in self.sections for item in section.items)

    def item(self, link_id: str) -> Item:
        for item in self.items:
            if item.link_id == link_id:
                return item
        raise KeyError(link_id)

    def clean_answers(self, answers: Mapping[str, Any]) -> dict[str, Any]:
        """Only known items with valid values; raises ValueError naming the first bad one."""
        cleaned = {}
        for link_id, value in answers.items():
            try:
                item = self.item(link_id)
            except KeyError:
                raise ValueError(f"unknown item {link_id!r}") from None
            if value is None:
                continue
            if not item.valid(value):
                raise ValueError(f"invalid answer for {link_id!r}")
            cleaned[link_id] = value
        return cleaned


def _nrs(link_id: str, text, low, high, maximum: int = 10, minimum: int = 0) -> Item:
    return Item(
        link_id,
        text,
        ItemKind.NUMERIC_SCALE,
        minimum=minimum,
        maximum=maximum,
        low_anchor=low,
        high_anchor=high,
        required=True,
    )


def _vas(link_id: str, text, low, high, maximum: int, unit: str) -> Item:
    return Item(
        link_id,
        text,
        ItemKind.VISUAL_ANALOGUE,
        minimum=0,
        maximum=maximum,
        low_anchor=low,
        high_anchor=high,
        unit=unit,
        required=True,
    )


PAIN_NRS = Instrument(
    code="pain_nrs",
    version="1.0",
    title=_("Calcinosis pain"),
    recall_period=_("the past week"),
    licence_note=_("Numeric rating scale; public domain wording written for this study."),
    sections=(
        Section(
            "pain",
            _("Pain from calcinosis"),
            (
                _nrs(
                    "pain",
                    _("How much pain did your calcinosis cause you over the past week?"),
                    _("No pain"),
                    _("Worst pain imaginable"),
                ),
            ),
        ),
    ),
    scores=(ScoreDefinition("pain_nrs", _("Calcinosis pain (0-10)"), Decimal(0), Decimal(10)),),
    score=scoring.single_value("pain", "pain_nrs"),
)

ACTIVITY_VAS = Instrument(
    code="activity_vas",
    version="1.0",
    title=_("Calcinosis activity"),
    recall_period=_("the past week"),
    licence_note=_("Visual analogue scale (100 mm); wording written for this study."),
    sections=(
        Section(
            "activity",
            _("Calcinosis activity"),
            (
                _vas(
                    "activity",
                    _(
                        "Considering all the ways your calcinosis affects you, how active has it been over the past week?"
                    ),
                    _("Not active at all"),
                    _("Extremely active"),
                    100,
                    "mm",
                ),
            ),
        ),
    ),
    scores=(ScoreDefinition("activity_vas", _("Calcinosis activity (0-100 mm)"), Decimal(0), Decimal(100)),),
    score=scoring.single_value("activity", "activity_vas"),
)

PATIENT_GLOBAL = Instrument(
    code="ptga",
    version="1.0",
    title=_("Patient global assessment"),
    recall_period=_("the past week"),
    licence_note=_("Numeric rating scale 0-10; wording written for this study."),
    sections=(
        Section(
            "global",
            _("Your overall health"),
            (
                _nrs(
                    "global",
                    _("Considering everything, how has your disease affected you over the past week?"),
                    _("Very well"),
                    _("Very poorly"),
                ),
            ),
        ),
    ),
    scores=(ScoreDefinition("ptga", _("Patient global assessment (0-10)"), Decimal(0), Decimal(10)),),
    score=scoring.single_value("global", "ptga"),
)

# --- HAQ-DI -----------------------------------------------------------------------------------

HAQ_OPTIONS = (
    Option(0, _("Without any difficulty")),
    Option(1, _("With some difficulty")),
    Option(2, _("With much difficulty")),
    Option(3, _("Unable to do")),
)

# (category code, title, items) - 20 items in 8 categories (DOMAIN.md s.5).
HAQ_CATEGORIES = (
    (
        "dressing",
        _("Dressing and grooming"),
        (
            _("Dress yourself, including tying shoelaces and doing buttons?"),
            _("Shampoo your hair?"),
        ),
    ),
    (
        "arising",
        _("Arising"),
        (
            _("Stand up from a straight chair?"),
            _("Get in and out of bed?"),
        ),
    ),
    (
        "eating",
        _("Eating"),
        (
            _("Cut your meat?"),
            _("Lift a full cup or glass to your mouth?"),
            _("Open a new milk carton?"),
        ),
    ),
    (
        "walking",
        _("Walking"),
        (
            _("Walk outdoors on flat ground?"),
            _("Climb up five steps?"),
        ),
    ),
    (
        "hygiene",
        _("Hygiene"),
        (
            _("Wash and dry your body?"),
            _("Take a tub bath?"),
            _("Get on and off the toilet?"),
        ),
    ),
    (
        "reach",
        _("Reach"),
        (
            _("Reach and get down a 5-pound object (such as a bag of sugar) from just above your head?"),
            _("Bend down to pick up clothing from the floor?"),
        ),
    ),
    (
        "grip",
        _("Grip"),
        (
            _("Open car doors?"),
            _("Open jars which have been previously opened?"),
            _("Turn faucets on and off?"),
        ),
    ),
    (
        "activities",
        _("Activities"),
        (
            _("Run errands and shop?"),
            _("Get in and out of a car?"),
            _("Do chores such as vacuuming or yardwork?"),
        ),
    ),
)


def _haq_sections() -> tuple[Section, ...]:
    sections = []
    for code, title, questions in HAQ_CATEGORIES:
        items = [
            Item(f"{code}_{n}", text, ItemKind.CHOICE, options=HAQ_OPTIONS, required=True)
            for n, text in enumerate(questions, start=1)
        ]
        items.append(
            Item(
                f"{code}_aids",
                _("Do you usually use aids or devices for these activities?"),
                ItemKind.BOOLEAN,
            )
        )
        items.append(
            Item(
                f"{code}_help",
                _("Do you usually need help from another person for these activities?"),
                ItemKind.BOOLEAN,
            )
        )
        sections.append(Section(code, title, tuple(items), help_text=_("Are you able to...")))
    return tuple(sections)


HAQ_DI = Instrument(
    code="haq_di",
    version="1.0",
    title=_("Health Assessment Questionnaire Disability Index (HAQ-DI)"),
    recall_period=_("the past week"),
    licence_note=_(
        "HAQ-DI (c) Stanford University; used under its licence terms. Item wording here is a "
        "study rendering for development and must be replaced by the licensed version."
    ),
    sections=_haq_sections(),
    scores=(ScoreDefinition("haq_di", _("HAQ-DI (0-3)"), Decimal(0), Decimal(3)),),
    score=scoring.haq_di,
    introduction=_("We are interested in how your illness affects your ability to function in daily life."),
)

# --- Scleroderma HAQ visual analogue scales -------------------------------------------------------

SHAQ_SCALES = (
    ("shaq_pain", _("How much pain have you had because of your illness in the past week?")),
    ("shaq_intestinal", _("How much have your intestinal problems interfered with your activities?")),
    ("shaq_breathing", _("How much have your breathing problems interfered with your activities?")),
    ("shaq_raynauds", _("How much has Raynaud's interfered with your activities?")),
    ("shaq_ulcers", _("How much have your finger ulcers interfered with your activities?")),
    ("shaq_severity", _("Overall, how severe is your disease today?")),
)
SHAQ_LABELS = {
    "shaq_pain": _("SHAQ pain"),
    "shaq_intestinal": _("SHAQ intestinal problems"),
    "shaq_breathing": _("SHAQ breathing"),
    "shaq_raynauds": _("SHAQ Raynaud's"),
    "shaq_ulcers": _("SHAQ finger ulcers"),
    "shaq_severity": _("SHAQ overall severity"),
}
SHAQ_VAS = Instrument(
    code="shaq_vas",
    version="1.0",
    title=_("Scleroderma HAQ visual analogue scales"),
    recall_period=_("the past week"),
    licence_note=_("SHAQ (Steen & Medsger); 15 cm lines scaled to 0-3. Study rendering for development."),
    sections=tuple(
        Section(
            code,
            text,
            (_vas(code, text, _("Does not interfere / none"), _("Very severe limitation"), 150, "mm"),),
        )
        for code, text in SHAQ_SCALES
    ),
    scores=tuple(
        ScoreDefinition(code, format_lazy("{} (0-3)", SHAQ_LABELS[code]), Decimal(0), Decimal(3))
        for code, _text in SHAQ_SCALES
    ),
    score=scoring.shaq_vas(tuple(code for code, _text in SHAQ_SCALES), line_mm=150),
)

# --- Cochin Hand Function Scale ----------------------------------------------------------------------

COCHIN_OPTIONS = (
    Option(0, _("Yes, without difficulty")),
    Option(1, _("Yes, with a little difficulty")),
    Option(2, _("Yes, with some difficulty")),
    Option(3, _("Yes, with much difficulty")),
    Option(4, _("Nearly impossible to do")),
    Option(5, _("Impossible")),
)
COCHIN_GROUPS = (
    ("kitchen", _("In the kitchen"), 8),
    ("dressing", _("Dressing"), 2),
    ("hygiene", _("Hygiene"), 2),
    ("office", _("In the office"), 2),
    ("other", _("Other"), 4),
)
COCHIN_TEXTS = (
    _("Can you hold a bowl?"),
    _("Can you seize a full bottle and raise it?"),
    _("Can you hold a plate full of food?"),
    _("Can you pour liquid from a full bottle into a glass?"),
    _("Can you unscrew the lid from a jar opened before?"),
    _("Can you cut meat with a knife?"),
    _("Can you prick things well with a fork?"),
    _("Can you peel fruit?"),
    _("Can you button your shirt?"),
    _("Can you open and close zippers?"),
    _("Can you squeeze a new tube of toothpaste?"),
    _("Can you hold your toothbrush efficiently?"),
    _("Can you write a short sentence with a pencil or pen?"),
    _("Can you write a letter with a pencil or pen?"),
    _("Can you turn a round door knob?"),
    _("Can you cut a piece of paper with scissors?"),
    _("Can you pick up coins from a table top?"),
    _("Can you turn a key in the lock?"),
)


def _cochin_sections() -> tuple[Section, ...]:
    sections, n = [], 0
    for code, title, count in COCHIN_GROUPS:
        items = []
        for _i in range(count):
            items.append(
                Item(f"q{n + 1}", COCHIN_TEXTS[n], ItemKind.CHOICE, options=COCHIN_OPTIONS, required=True)
            )
            n += 1
        sections.append(Section(code, title, tuple(items)))
    return tuple(sections)


COCHIN = Instrument(
    code="cochin",
    version="1.0",
    title=_("Cochin Hand Function Scale"),
    recall_period=_("now, without help or aids"),
    licence_note=_("Cochin Hand Function Scale (Duruoz et al.); study rendering for development."),
    sections=_cochin_sections(),
    scores=(ScoreDefinition("cochin", _("Cochin Hand Function Scale (0-90)"), Decimal(0), Decimal(90)),),
    score=scoring.cochin(tuple(f"q{n}" for n in range(1, 19))),
)

INSTRUMENTS: dict[str, Instrument] = {
    instrument.code: instrument
    for instrument in (PAIN_NRS, ACTIVITY_VAS, PATIENT_GLOBAL, HAQ_DI, SHAQ_VAS, COCHIN)
}


def instrument(code: str) -> Instrument:
    return INSTRUMENTS[code]
