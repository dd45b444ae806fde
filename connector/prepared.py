"""Reads and inserts the ORM compiles once, for the action endpoint's hot paths (issue 17).

Profiled under load, a ``GetStatus`` by token spent most of its time in
Django building and compiling two small queries (``QuerySet.filter``, the
lookups and joins, ``SQLCompiler.as_sql``), far more than the database took
to answer them. A ``PreparedRead`` keeps what that work produces:

- it is written as an ordinary queryset, built by a function of named slots
  (``lambda queue, token: Action.objects.filter(queue=queue, token=token)``);
- on its first use with a database connection, Django's own compiler turns it
  into SQL, with a stand-in for each slot's value; the SQL, where each slot's
  value goes among the parameters, and the columns' converters are kept for
  that connection (each of the endpoint's threads keeps its own);
- every later use puts the values in their places, runs the SQL and converts
  the rows as the queryset would have, into tuples or model instances.

So the SQL is exactly what the queryset makes on that database, quoting,
vendor functions and all; a slot that takes a list (``task__in=tasks``)
compiles once per length of list, up to ``LONGEST_LIST`` values (a longer or
empty list runs the queryset as Django would). A queryset that changes a slot's value
before it reaches the database (a ``contains`` lookup adding ``%``) cannot be
prepared, and says so on its first use.

A ``PreparedInsert`` does the same for ``instance.save()`` of a new row (a
Fetch stores four): the ``INSERT ... RETURNING`` Django writes for the model,
kept per connection, and each field's value prepared for the database by the
field itself, as ``save()`` prepares it. Its ``add`` inserts a row from its
field values, with neither the instance nor the ``RETURNING``: for rows nobody
reads back at once (three of a Fetch's four: a tenth to a fifth less CPU per
Fetch in one process; bench/README.md). It sends no ``pre_save`` or
``post_save`` signal: it is for models nothing listens to
(tests/connector/test_prepared.py checks that they have no receivers).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.models.sql.subqueries import InsertQuery

M = TypeVar("M", bound=Model)

#: A slot's value: one value, or a list of them (a list compiles per length).
Value = Any


class _Stand(str):
    """A slot's value while the queryset is compiled: a text no value is."""

    __slots__ = ()


@dataclass(frozen=True)
class _Compiled:
    sql: str
    #: For each parameter of ``sql``: ``(slot, index in a list slot or None)``, or
    #: ``None`` for a constant of the queryset, which ``constants`` has in its place.
    places: tuple[tuple[str, int | None] | None, ...]
    constants: tuple[Any, ...]
    #: ``{column: (converters, expression)}``, as ``SQLCompiler.get_converters`` makes.
    converters: dict[int, tuple[list[Callable[..., Any]], Any]]
    model: type[Model]
    #: For model rows: the model's field attnames in their columns, and the annotations'.
    model_columns: tuple[int, int]
    attnames: tuple[str, ...]
    annotations: tuple[tuple[str, int], ...]

    def params(self, values: dict[str, Value]) -> list[Any]:
        params = []
        for place, constant in zip(self.places, self.constants, strict=True):
            if place is None:
                params.append(constant)
            else:
                slot, index = place
                params.append(values[slot] if index is None else values[slot][index])
        return params


class PreparedRead(Generic[M]):
    """A queryset of named slots, compiled once per connection and shape of its values."""

    def __init__(self, build: Callable[..., QuerySet[M, Any]], *, using: str = DEFAULT_DB_ALIAS):
        self._build = build
        self._using = using
        # Per connection object (one per thread), per shape of the values.
        self._compiled: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], _Compiled]]
        self._compiled = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def rows(self, **values: Value) -> list[tuple[Any, ...]]:
        """The rows, as a ``values_list`` queryset gives them."""
        shape = _shape(values)
        if shape is None:
            return [tuple(row) for row in self._build(**values)]
        compiled, rows, connection = self._run(shape, values)
        return [tuple(row) for row in _converted(rows, compiled, connection)]

    def models(self, **values: Value) -> list[M]:
        """The rows as model instances (``only()`` and annotations as the queryset has them)."""
        shape = _shape(values)
        if shape is None:
            return list(self._build(**values))
        compiled, rows, connection = self._run(shape, values)
        start, end = compiled.model_columns
        found: list[Any] = []
        for row in _converted(rows, compiled, connection):
            instance = compiled.model.from_db(self._using, compiled.attnames, row[start:end])
            for name, column in compiled.annotations:
                setattr(instance, name, row[column])
            found.append(instance)
        return found

    def first(self, **values: Value) -> M | None:
        found = self.models(**values)
        return found[0] if found else None

    def _run(
        self, shape: tuple[Any, ...], values: dict[str, Value]
    ) -> tuple[_Compiled, list[Any], Any]:
        connection = connections[self._using]
        compiled = self._compiled.get(connection, {}).get(shape)
        if compiled is None:
            compiled = self._compile(connection, shape)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params(values))
            rows = cursor.fetchall()
        return compiled, rows, connection

    def _compile(self, connection: Any, shape: tuple[Any, ...]) -> _Compiled:
        stands: dict[str, tuple[str, int | None]] = {}
        arguments: dict[str, Any] = {}
        for name, length in shape:
            if length is None:
                stand = _Stand(f"\x1eslot {name}\x1e")
                stands[stand] = (name, None)
                arguments[name] = stand
            else:
                items = [_Stand(f"\x1eslot {name} {i}\x1e") for i in range(length)]
                stands.update({item: (name, i) for i, item in enumerate(items)})
                arguments[name] = items
        queryset = self._build(**arguments)
        compiler: SQLCompiler = queryset.query.get_compiler(connection=connection)
        sql, params = compiler.as_sql()
        places = tuple(stands.get(param) if isinstance(param, str) else None for param in params)
        missing = set(stands.values()) - {place for place in places if place is not None}
        if missing:
            raise ImproperlyConfigured(
                f"The queryset of {self._build!r} changes the values of {sorted(missing)} "
                "before they reach the database: it cannot be prepared."
            )
        columns = [column for column, _, _ in compiler.select[: compiler.col_count]]
        model_columns, attnames = (0, 0), ()
        if compiler.klass_info:
            selected = compiler.klass_info["select_fields"]
            model_columns = (selected[0], selected[-1] + 1)
            attnames = tuple(
                column.target.attname for column in columns[model_columns[0] : model_columns[1]]
            )
        compiled = _Compiled(
            sql=sql,
            model=queryset.model,
            places=places,
            constants=tuple(params),
            converters=compiler.get_converters(columns),
            model_columns=model_columns,
            attnames=attnames,
            annotations=tuple(compiler.annotation_col_map.items()),
        )
        with self._lock:
            self._compiled.setdefault(connection, {})[shape] = compiled
        return compiled


#: A list slot of more values than this is not prepared (each length compiles once:
#: the lengths clients can send must not grow the cache without bound), nor is an
#: empty one (Django answers it without a query).
LONGEST_LIST = 16


def _shape(values: dict[str, Value]) -> tuple[Any, ...] | None:
    """The values' shape (each slot's name, and its length if it takes a list), or None:
    not one to prepare."""
    shape: list[tuple[str, int | None]] = []
    for name, value in sorted(values.items()):
        if isinstance(value, list | tuple):
            if not 0 < len(value) <= LONGEST_LIST:
                return None
            shape.append((name, len(value)))
        else:
            shape.append((name, None))
    return tuple(shape)


def _converted(rows: Sequence[Any], compiled: _Compiled, connection: Any) -> list[list[Any]]:
    if not compiled.converters:
        return [list(row) for row in rows]
    converted = []
    for row in map(list, rows):
        for column, (converters, expression) in compiled.converters.items():
            value = row[column]
            for converter in converters:
                value = converter(value, expression, connection)
            row[column] = value
        converted.append(row)
    return converted


class PreparedInsert(Generic[M]):
    """``instance.save()`` of new rows of one model, its SQL compiled once per connection."""

    def __init__(self, model: type[M], *, using: str = DEFAULT_DB_ALIAS):
        self.model = model
        self._using = using
        self._sql: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._add_sql: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        meta = model._meta
        # As Model._save_table inserts a row without its primary key set.
        self._fields = [
            field for field in meta.local_concrete_fields if field is not meta.auto_field
        ]
        self._attnames = frozenset(field.attname for field in self._fields)

    def save(self, instance: M) -> M:
        """Insert ``instance`` (a new row: no primary key yet); set its primary key."""
        if instance.pk is not None or not instance._state.adding:
            raise ValueError(f"{instance!r} is not a new row")
        connection = connections[self._using]
        if not connection.features.can_return_columns_from_insert:
            instance.save(using=self._using)
            return instance
        values = [field.pre_save(instance, add=True) for field in self._fields]
        if any(hasattr(value, "resolve_expression") for value in values):
            instance.save(using=self._using)  # an expression's SQL is not a parameter
            return instance
        sql = self._sql.get(connection) or self._compile(connection, instance)
        params = [
            field.get_db_prep_save(value, connection)
            for field, value in zip(self._fields, values, strict=True)
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            (pk,) = cursor.fetchone()
        instance.pk = pk
        instance._state.adding = False
        instance._state.db = self._using
        return instance

    def add(self, **values: Any) -> None:
        """Insert a new row of these field values, named as the model's attributes
        (``action_id``, not ``action``); a field left out takes its default.

        The row ``save()`` of ``model(**values)`` would insert, without the
        instance or reading back its primary key. For plain values only: a field
        whose ``pre_save`` makes the value (``auto_now``) is refused.
        """
        unknown = values.keys() - self._attnames
        if unknown:
            raise TypeError(f"{self.model.__name__} has no fields {sorted(unknown)}")
        connection = connections[self._using]
        sql = self._add_sql.get(connection) or self._compile_add(connection)
        params = [
            field.get_db_prep_save(
                values[field.attname] if field.attname in values else field.get_default(),
                connection,
            )
            for field in self._fields
        ]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def _compile_add(self, connection: Any) -> str:
        made = [
            field.name
            for field in self._fields
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
        ]
        if made:
            raise ImproperlyConfigured(
                f"{self.model.__name__}.{made[0]} is made when the row is saved: "
                "add() cannot insert it"
            )
        sql = self._insert_sql(connection, self.model(), returning=False)
        self._add_sql[connection] = sql
        return sql

    def _compile(self, connection: Any, instance: M) -> str:
        sql = self._insert_sql(connection, instance, returning=True)
        self._sql[connection] = sql
        return sql

    def _insert_sql(self, connection: Any, instance: M, *, returning: bool) -> str:
        """The INSERT Django writes for ``instance``, with ``RETURNING`` its key or not."""
        query = InsertQuery(self.model)
        query.insert_values(self._fields, [instance])
        compiler = query.get_compiler(connection=connection)
        if returning:
            compiler.returning_fields = [self.model._meta.pk]
        ((sql, _),) = compiler.as_sql()
        return sql
