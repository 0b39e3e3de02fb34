"""Hostile input for issue #10's bad-input proofs: Hypothesis strategies of values nobody should
type, the form data a browser would send unchanged, and the oracle every submission must pass.

The oracle (`submit`) posts through the real view inside a savepoint that is rolled back after
the check, so every example starts from the same saved state. A submission either

- is saved: a redirect, at least one new audit event, exactly one event per changed record, and
  each hostile free-text value found verbatim (after the form's own strip) in the new events; or
- is refused: a page that names the problem (field errors or an alert) and no new audit event.

Anything else (a 500, which the test client raises; another status; events on a refusal; a
redirect that lost the text) fails the example, and Hypothesis shrinks it to the smallest input.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.db import connection, transaction
from django.test.utils import ContextList
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from trial.audit import audited_models

# Reproducible in CI: examples are derived from the test's name, never from a random seed, and no
# example database is read or written. `HYPOTHESIS_PROFILE=fuzz-long` tries more of them.
settings.register_profile(
    "fuzz",
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("fuzz-long", parent=settings.get_profile("fuzz"), max_examples=400)
FUZZ = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "fuzz"))

# Values that have broken web forms somewhere: markup and template syntax, URLs a renderer could
# fetch, spreadsheet formulas, direction overrides, combining marks, astral characters, NUL and
# other controls, numbers a float or a Decimal column cannot hold, and dates that do not exist.
NASTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ request.user.password }}",
    "{% debug %}{% load static %}",
    "file:///etc/passwd",
    "http://169.254.169.254/latest/meta-data/",
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "\u202egnp.exe",
    "\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627",
    "e\u0301\u0302\u0303\u0304\u0305",
    "\U0001f600\U00010348\U0001d54f",
    "\x00",
    "a\x00b",
    "\x01\x08\x0b\x0c\x1b\x7f",
    "\r\n\r\n",
    "",
    " ",
    "\t \n",
    "\u00a0\u2003\u3000",
    "NaN",
    "nan",
    "inf",
    "-Infinity",
    "1e308",
    "1e-400",
    "-1",
    "0",
    "-0.0",
    "99999999999999999999999999999999",
    "-99999999999999999999999999999999",
    "1" * 400,
    "0x1F",
    "1,5",
    "\u0661\u0662",
    "2026-02-30",
    "0000-00-00",
    "9999-12-31",
    "0001-01-01",
    "-2026-11-03",
    "2026-11-03T25:61",
    "2026-11-03T09:30+99:00",
    "31/12/2026",
    "' OR 1=1 --",
    "%s%s%n",
    "../../../../etc/passwd",
    "x" * 5000,
]

hostile_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Mn", "Zs", "So", "Lo"]), max_size=20),
    st.text(max_size=5).map(lambda s: s * 300),
)
hostile_number = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
)
hostile_value = st.one_of(
    hostile_text,
    hostile_number,
    # A list where one value is expected (or many for a multiple choice): the wrong type.
    st.lists(st.sampled_from(NASTY[:20]), min_size=2, max_size=3),
)


def mutations(names: Iterable[str], *, max_fields: int = 3):
    """Up to `max_fields` of the form's fields, each set to a hostile value."""
    return st.dictionaries(st.sampled_from(sorted(names)), hostile_value, min_size=1, max_size=max_fields)


def text_mutations(names: Iterable[str]):
    """Hostile text in the free-text fields, everything else left valid."""
    return st.dictionaries(st.sampled_from(sorted(names)), hostile_text, min_size=1, max_size=2)


# --- The audit ledger ------------------------------------------------------------------------


def _event_tables() -> list[tuple[type, str]]:
    return [(event, event._meta.db_table) for event in audited_models().values()]


def audit_high_water() -> dict[str, int]:
    """The highest event id of every audit event table, in one query."""
    tables = _event_tables()
    sql = " UNION ALL ".join(f"SELECT %s, COALESCE(MAX(pgh_id), 0) FROM {table}" for _, table in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql, [table for _, table in tables])
        return dict(cursor.fetchall())


def audit_events_since(mark: dict[str, int]) -> list:
    """Every audit event written after `mark`, as event model instances."""
    now = audit_high_water()
    events = []
    for event_model, table in _event_tables():
        if now[table] > mark[table]:
            events.extend(event_model.objects.filter(pgh_id__gt=mark[table]).order_by("pgh_id"))
    return events


def _strings(value) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def event_strings(events) -> list[str]:
    strings = []
    for event in events:
        for field in event._meta.concrete_fields:
            if field.name == "pgh_context" or not field.name.startswith("pgh_"):
                strings.extend(_strings(getattr(event, field.attname)))
    return strings


# --- The oracle -----------------------------------------------------------------------------

REFUSAL_STATUSES = {200, 400, 409, 410, 422}


@dataclass
class Outcome:
    saved: bool
    status: int
    events: int


def _names_a_problem(response) -> bool:
    body = response.content.decode()
    if 'role="alert"' in body or "is-invalid" in body or "invalid-feedback" in body:
        return True
    return any(value.errors for value in context_values(response) if isinstance(value, forms.BaseForm))


def context_values(response) -> list:
    """Every value of the templates' contexts a response was rendered with."""
    contexts = response.context
    if contexts is None:
        return []
    if not isinstance(contexts, ContextList):
        contexts = [contexts]
    return [value for context in contexts for value in context.flatten().values()]


def _flashed(response, *, at_least: int = messages.DEBUG) -> bool:
    """Whether the view left a message of this level or above for the next page."""
    return any(message.level >= at_least for message in messages.get_messages(response.wsgi_request))


def submit(
    client, url: str, data: dict, *, text_fields: Iterable[str] = (), not_found_ok: bool = False, **extra
) -> Outcome:
    """Post `data` to `url` and check the bad-input rule; the database is rolled back after.
    `not_found_ok`: the data name a target that does not exist (a hidden field of a one-button
    form), so the 404 an unknown address gets is a refusal too."""
    with transaction.atomic():
        mark = audit_high_water()
        response = client.post(url, data, **extra)
        events = audit_events_since(mark)
        transaction.set_rollback(True)
    status = response.status_code
    if status in (301, 302, 303):
        if not events and _flashed(response, at_least=messages.WARNING):
            return Outcome(saved=False, status=status, events=0)  # refused, then redirected (PRG)
        if not events:  # "Nothing changed": fine if no text was typed that should have been kept
            assert _flashed(response), f"{url}: redirected as saved, but no audit event was written"
        per_record = Counter((type(event), event.pgh_obj_id) for event in events)
        doubled = {key: count for key, count in per_record.items() if count != 1}
        assert not doubled, f"{url}: more than one audit event for one record: {doubled}"
        stored = event_strings(events)
        for name in text_fields:
            value = data.get(name)
            if isinstance(value, str) and value.strip():
                assert any(value.strip() in text for text in stored), (
                    f"{url}: {name}={value!r} was accepted but not stored as entered"
                )
        return Outcome(saved=bool(events), status=status, events=len(events))
    if not_found_ok and status == 404:
        assert not events, f"{url}: not found, but wrote {len(events)} audit event(s)"
        return Outcome(saved=False, status=status, events=0)
    assert status in REFUSAL_STATUSES, f"{url}: unexpected status {status}"
    assert not events, f"{url}: refused with {status} but wrote {len(events)} audit event(s)"
    assert _names_a_problem(response), f"{url}: refused with {status} without saying why"
    return Outcome(saved=False, status=status, events=0)
