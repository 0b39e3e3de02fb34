"""Querysets compiled once per process and run with each call's values (issue #9).

A page that reads the same shape of rows on every request - the measurement table's save reads its
visit and its lesions - pays Django to build the queryset and compile it to SQL each time, although
only the values change: ~5 ms of Python in a ~20 ms save. A `PreparedQuery` builds its queryset
once, compiles it, and from then on runs that SQL with each call's values, making model instances
exactly as the queryset would (its select_related objects, its annotations, Django's converters).

The queryset is written as usual, as a function of named values, and the values are declared with
their types::

    TABLE_VISIT = PreparedQuery(
        lambda visit_id: Visit.objects.select_related("participant").filter(pk=visit_id),
        visit_id=int,
    )
    visits = TABLE_VISIT(visit_id=7)   # a list of Visit

What makes it safe: the queryset is compiled twice, with two different stand-ins for every value,
and the two statements must be the same text whose parameters differ exactly where a stand-in went
in. A queryset whose SQL depends on a value (a branch, a list's length) or that changes a value on
its way to the statement (`pk=visit_id + 1`) is refused when first run, not run wrongly.

django-prepared-queries did this for Django 1 and 2 (last release 2019); it is not kept up, and
this is the part of it the EDC needs, against Django 5.2's compiler: `SQLCompiler.as_sql` and the
`select` / `klass_info` / `annotation_col_map` it leaves, as `ModelIterable` uses them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)

# Stand-ins differ per value and per variant. Integers stay inside a small integer column's range:
# Django drops a comparison with a value its column cannot hold from the statement.
_STAND_IN_INT = 30_000
_STAND_IN_DAY = dt.date(1801, 1, 1)


def _stand_in(kind: type, index: int, variant: int):
    if kind is int:
        return _STAND_IN_INT + variant * 1_000 + index
    if kind is dt.date:
        return _STAND_IN_DAY + dt.timedelta(days=variant * 1_000 + index)
    if kind is str:
        return f"prepared-query-stand-in-{variant}-{index}"
    raise TypeError(f"a prepared query takes int, date or str values, not {kind.__name__}")


@dataclass(frozen=True)
class _Statement:
    """One compiled queryset: its SQL, its parameters (a value's name where the call's value
    goes), and what ModelIterable needs to make instances of its rows."""

    sql: str
    constants: tuple
    slots: tuple[str | None, ...]
    for_update: bool
    model: type[Model]
    model_columns: slice
    init_list: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]
    converters: tuple[tuple[int, tuple, object], ...]
    column_count: int | None  # rows are cut to this many columns (extra ordering columns)
    populators: list

    def run(self, connection, values: dict) -> list:
        if self.for_update and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        params = [
            value if name is None else values[name]
            for name, value in zip(self.slots, self.constants, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            rows = cursor.fetchall()
        objects = []
        using = connection.alias
        for fetched in rows:
            row = list(fetched[: self.column_count] if self.column_count is not None else fetched)
            for position, functions, expression in self.converters:
                value = row[position]
                for function in functions:
                    value = function(value, expression, connection)
                row[position] = value
            obj = self.model.from_db(using, self.init_list, row[self.model_columns])
            for populator in self.populators:
                populator.populate(row, obj)
            for name, position in self.annotations:
                setattr(obj, name, row[position])
            objects.append(obj)
        return objects


class PreparedQuery(Generic[M]):
    """`build(**values)` (a queryset of model instances) compiled on its first run on each database
    and then run as SQL with each call's values. Values are declared by name with their type
    (int, datetime.date or str); calling with other names is a TypeError."""

    def __init__(self, build: Callable[..., QuerySet[M]], **parameters: type):
        self.build = build
        self.parameters = parameters
        self._statements: dict[str, _Statement] = {}

    def __call__(self, *, using: str = DEFAULT_DB_ALIAS, **values) -> list[M]:
        if values.keys() != self.parameters.keys():
            raise TypeError(f"a prepared query takes {sorted(self.parameters)}, not {sorted(values)}")
        for name, value in values.items():
            # None included: the queryset would have said IS NULL where the statement says = NULL.
            if not isinstance(value, self.parameters[name]):
                raise TypeError(f"{name} is {value!r}, not a {self.parameters[name].__name__}")
        statement = self._statements.get(using)
        if statement is None:
            # Two threads may both compile the first time: the same statement, either one is kept.
            statement = self._statements[using] = self._compile(using)
        return statement.run(connections[using], values)

    def _compile(self, using: str) -> _Statement:
        variants = [
            {
                name: _stand_in(kind, index, variant)
                for index, (name, kind) in enumerate(self.parameters.items())
            }
            for variant in (1, 2)
        ]
        compiled = []
        for values in variants:
            queryset = self.build(**values)
            if queryset._iterable_class is not ModelIterable or queryset._prefetch_related_lookups:
                raise ImproperlyConfigured(f"{self.build!r}: a prepared query reads model instances only")
            compiler = queryset.query.get_compiler(using=using)
            sql, params = compiler.as_sql()
            compiled.append((compiler, sql, tuple(params)))
        (compiler, sql, params), (_other, other_sql, other_params) = compiled
        if sql != other_sql or len(params) != len(other_params):
            raise ImproperlyConfigured(f"{self.build!r}: the statement's text depends on its values")
        slots = [self._slot(a, b, variants) for a, b in zip(params, other_params, strict=True)]
        unused = set(self.parameters) - set(slots)
        if unused:
            raise ImproperlyConfigured(f"{self.build!r}: {sorted(unused)} never reach the statement")
        select, klass_info = compiler.select, compiler.klass_info
        fields = [column for column, _sql, _alias in select[: compiler.col_count]]
        columns = klass_info["select_fields"]
        model_columns = slice(columns[0], columns[-1] + 1)
        return _Statement(
            sql=sql,
            constants=tuple(None if slot else value for slot, value in zip(slots, params, strict=True)),
            slots=tuple(slots),
            for_update=bool(compiler.query.select_for_update),
            model=klass_info["model"],
            model_columns=model_columns,
            init_list=tuple(column[0].target.attname for column in select[model_columns]),
            annotations=tuple(compiler.annotation_col_map.items()),
            converters=tuple(
                (position, tuple(functions), expression)
                for position, (functions, expression) in compiler.get_converters(fields).items()
            ),
            column_count=compiler.col_count if compiler.has_extra_select else None,
            populators=get_related_populators(klass_info, select, using),
        )

    def _slot(self, first, second, variants: list[dict]) -> str | None:
        """Which value a parameter is (its name), or None for a constant of the statement."""
        if first == second:
            return None
        for name in self.parameters:
            if first == variants[0][name] and second == variants[1][name]:
                return name
        raise ImproperlyConfigured(
            f"{self.build!r}: a value is changed on its way to the statement ({first!r}): "
            "compute it before the call and pass it as a value"
        )
