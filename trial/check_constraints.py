"""A record's CheckConstraints checked in Python before it is written, where Python can.

Django's `Model.validate_constraints()` asks PostgreSQL about every CheckConstraint: a SAVEPOINT,
a SELECT and a RELEASE each, so the four constraints of an ultrasound measurement cost twelve
round trips per saved row - most of the statements of a saved measurement table (issue #9). Our
conditions are comparisons of the row's own fields with constants or other fields, which Python
evaluates exactly, with SQL's three-valued logic: a CHECK refuses a row only when its condition is
false, not when it is unknown (NULL). Anything else (an expression or function, a lookup not
listed here, a join, a text ordering that depends on the collation) is asked of the database as
Django does, so no constraint is checked less. PostgreSQL still enforces every constraint on the
write itself; `tests/trial/test_check_constraints.py` holds the Python answers to the database's.
"""

from __future__ import annotations

import operator
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import router
from django.db.models import CheckConstraint, F, Model, Q
from django.db.models.constants import LOOKUP_SEP

# SQL NULL (unknown) is None here; True and False are themselves.
_COMPARISONS = {
    "exact": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
# Field types whose values compare in Python as in PostgreSQL. Text is only compared for
# equality: its ordering belongs to the collation.
_ORDERED_TYPES = {
    "DecimalField",
    "IntegerField",
    "BigIntegerField",
    "SmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
    "PositiveSmallIntegerField",
    "DateField",
}
_EQUALITY_TYPES = _ORDERED_TYPES | {"CharField", "TextField", "BooleanField", "ForeignKey"}


class _AskTheDatabase(Exception):
    """The condition uses something this module does not evaluate."""


def _field(model: type[Model], name: str):
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        raise _AskTheDatabase from None
    if not field.concrete or field.generated or field.model is not model:
        raise _AskTheDatabase
    return field


def _value(instance: Model, field) -> Any:
    try:
        return field.to_python(getattr(instance, field.attname))
    except ValidationError:
        raise _AskTheDatabase from None


def _lookup(instance: Model, key: str, operand: Any) -> bool | None:
    name, _sep, lookup = key.partition(LOOKUP_SEP)
    lookup = lookup or "exact"
    field = _field(type(instance), name)
    kind = field.get_internal_type()
    value = _value(instance, field)
    if lookup == "isnull":
        if not isinstance(operand, bool):
            raise _AskTheDatabase
        return (value is None) is operand
    compare = _COMPARISONS.get(lookup)
    if compare is None or kind not in (_ORDERED_TYPES if lookup != "exact" else _EQUALITY_TYPES):
        raise _AskTheDatabase
    if isinstance(operand, F):
        other = _field(type(instance), operand.name)
        if other.get_internal_type() != kind:
            raise _AskTheDatabase
        operand = _value(instance, other)
    elif operand is None:
        if lookup == "exact":  # `field=None` is `field IS NULL` in Django
            return value is None
        raise _AskTheDatabase
    elif hasattr(operand, "resolve_expression") or isinstance(operand, Model):
        raise _AskTheDatabase
    else:
        try:
            operand = field.to_python(operand)
        except ValidationError:
            raise _AskTheDatabase from None
    if value is None or operand is None:
        return None
    return compare(value, operand)


def _condition(instance: Model, q: Q) -> bool | None:
    results = []
    for child in q.children:
        if isinstance(child, Q):
            results.append(_condition(instance, child))
        elif isinstance(child, tuple) and len(child) == 2:
            results.append(_lookup(instance, *child))
        else:
            raise _AskTheDatabase
    if q.connector == Q.AND:
        result = False if False in results else (None if None in results else True)
    elif q.connector == Q.OR:
        result = True if True in results else (None if None in results else False)
    else:
        raise _AskTheDatabase
    if q.negated and result is not None:
        result = not result
    return result


def _refers_to(model: type[Model], q: Q, names: set[str]) -> bool:
    for child in q.children:
        if isinstance(child, Q):
            if _refers_to(model, child, names):
                return True
            continue
        if not (isinstance(child, tuple) and len(child) == 2):
            continue  # not evaluated in Python: the database check applies Django's own rule
        key, operand = child
        if key.split(LOOKUP_SEP)[0] in names or (isinstance(operand, F) and operand.name in names):
            return True
    return False


def check_constraint_holds(instance: Model, constraint: CheckConstraint) -> bool | None:
    """The constraint's verdict on `instance` from Python (None: unknown, which PostgreSQL
    accepts), or raise `LookupError` when only the database can tell."""
    try:
        return _condition(instance, Q(constraint.condition))
    except _AskTheDatabase:
        raise LookupError(constraint.name) from None


class CheckConstraintsInPython:
    """Model mixin: `full_clean()` checks the model's CheckConstraints in Python where it can,
    the database is asked about the others (and about every other kind of constraint) as Django
    asks it. Same errors, same codes, same fields skipped as `Model.validate_constraints`."""

    def validate_constraints(self, exclude=None):
        exclude = set(exclude or ())
        using = router.db_for_write(self.__class__, instance=self)
        errors: dict = {}
        for model_class, model_constraints in self.get_constraints():
            for constraint in model_constraints:
                try:
                    if isinstance(constraint, CheckConstraint) and isinstance(constraint.condition, Q):
                        try:
                            # As Django: a constraint on an excluded field is not checked here.
                            if _refers_to(model_class, constraint.condition, exclude):
                                continue
                            holds = check_constraint_holds(self, constraint)
                        except LookupError:
                            constraint.validate(model_class, self, exclude=exclude, using=using)
                            continue
                        if holds is False:
                            raise ValidationError(
                                constraint.get_violation_error_message(), code=constraint.violation_error_code
                            )
                        continue
                    constraint.validate(model_class, self, exclude=exclude, using=using)
                except ValidationError as e:
                    if getattr(e, "code", None) == "unique" and len(getattr(constraint, "fields", ())) == 1:
                        errors.setdefault(constraint.fields[0], []).append(e)
                    else:
                        errors = e.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)
