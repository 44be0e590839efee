"""Reads that most requests run, sent on the driver's cursor instead of through SQLAlchemy's
statement machinery.

A page's first statement reads the signed-in user, and a rep's list is read on every filter
change; on a small statement, SQLAlchemy's work around the execution (its cache lookup, an
execution context, a result object and its rows) cost more than the statement itself, and
drew on more of the processor's caches than the rest of the request. A `PreparedRead` does that
work once: it compiles its statement once per dialect, with SQLAlchemy's own compiler, then on
every run binds the values with SQLAlchemy's own parameter handling and their types' bind
processors, sends the SQL on the driver's cursor of the session's connection (so it is part of
the same transaction, and psycopg prepares it on the server as it would any statement) and
gives the rows their types' result processing. The rows are plain tuples.

What stays as it was: the engine's `before_cursor_execute` and `after_cursor_execute` listeners
see the statement (without an execution context: they are called with None), so counting and
write tracking see it like any other. When the driver raises, the read runs again through
SQLAlchemy, whose error handling (wrapping, `handle_error`, invalidating a lost connection)
then decides. A statement whose SQL SQLAlchemy rewrites on each execution (expanding or
literal-execute parameters) is refused when it is first compiled: `in_ids` asks for a list
of ids with one parameter that keeps the SQL the same whatever the list's length.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, CompoundSelect, Integer, Select, String, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.type_api import TypeDecorator
from sqlalchemy.sql.visitors import InternalTraversal


class IdList(TypeDecorator):
    """A list of integer ids bound as one parameter: an integer array on PostgreSQL, a JSON
    array on SQLite (read there with json_each)."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(Integer))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Iterable[int] | None, dialect: Dialect) -> Any:
        ids = [int(each) for each in value or ()]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


class _InIds(ColumnElement[bool]):
    """`column` is one of the ids of the parameter `ids` (see `in_ids`)."""

    inherit_cache = True
    type = Boolean()
    _is_implicitly_boolean = True  # a condition as it is: SQLite is not asked for "= 1"
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("ids", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: ColumnElement, ids: ColumnElement) -> None:
        self.column, self.ids = column, ids


@compiles(_InIds)
def _in_json_array(element: _InIds, compiler: Any, **kw: Any) -> str:
    # Compiled SQL of a column and a bound parameter: no value is written into the text.
    return (f"{compiler.process(element.column, **kw)} IN "  # noqa: S608
            f"(SELECT value FROM json_each({compiler.process(element.ids, **kw)}))")


@compiles(_InIds, "postgresql")
def _equals_any(element: _InIds, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY({compiler.process(element.ids, **kw)})"


def in_ids(column: ColumnElement, name: str) -> ColumnElement[bool]:
    """`column IN (the ids given as the parameter `name`)`, the list bound as one parameter
    (`IdList`), so that the statement's SQL, and its plan on PostgreSQL, is the same for any
    number of ids, where an expanding IN writes one parameter per id."""
    return _InIds(column, bindparam(name, type_=IdList()))


@dataclass
class _Compiled:
    """A statement compiled for one dialect, with what binding and reading its rows need."""

    compiled: Any  # the SQLCompiler
    sql: str
    positional: tuple[str, ...] | None  # the parameter names in order, for a positional style
    bind_processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    types: tuple[Any, ...]  # the statement's columns' types
    # (column index, processor), made from the first cursor's description
    result_processors: tuple[tuple[int, Callable[[Any], Any]], ...] | None = None
    processors_keep_null: bool = False  # every result processor gives None for None


class PreparedRead:
    """A SELECT run on the driver's cursor (see the module's docstring)."""

    def __init__(self, statement: Select | CompoundSelect) -> None:
        self.statement = statement
        self._by_dialect: weakref.WeakKeyDictionary[Dialect, _Compiled] = (
            weakref.WeakKeyDictionary())
        self._lock = threading.Lock()

    def all(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """The rows, as plain tuples."""
        compiled = self._compiled_for(connection.dialect)
        try:
            parameters = self._bound(compiled, params)
        except Exception:  # SQLAlchemy's own binding says what is wrong, as it words it
            return self._through_sqlalchemy(connection, params)
        try:
            return self._run(connection, compiled, parameters)
        except connection.dialect.loaded_dbapi.Error:
            # A read has nothing to undo: SQLAlchemy runs it again, and wraps the error and
            # handles a lost connection as it does for any statement.
            return self._through_sqlalchemy(connection, params)

    def first(self, connection: Connection, params: Mapping[str, Any]) -> tuple | None:
        rows = self.all(connection, params)
        return rows[0] if rows else None

    def _compiled_for(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect)
        if compiled is None:
            with self._lock:
                compiled = self._by_dialect.get(dialect)
                if compiled is None:
                    compiled = self._by_dialect[dialect] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a PreparedRead's statement may not have expanding or "
                             "literal-execute parameters: its SQL would change per execution")
        if compiled.escaped_bind_names:
            raise ValueError("a PreparedRead's parameters must be named as the driver takes "
                             f"them: {sorted(compiled.escaped_bind_names)}")
        processors = {}
        for bind, name in compiled.bind_names.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        positional = tuple(compiled.positiontup) if compiled.positional else None
        return _Compiled(compiled, compiled.string, positional, tuple(processors.items()),
                         tuple(column.type for column in self.statement.selected_columns))

    def _through_sqlalchemy(self, connection: Connection,
                            params: Mapping[str, Any]) -> list[tuple]:
        return [tuple(row) for row in connection.execute(self.statement, params).all()]

    @staticmethod
    def _bound(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: SQLAlchemy's values (each given, and the statement's own),
        each through its type's bind processor, in order for a positional style."""
        values = compiled.compiled.construct_params(params)
        for name, process in compiled.bind_processors:
            values[name] = process(values[name])
        if compiled.positional is None:
            return values
        return tuple(values[name] for name in compiled.positional)

    def _run(self, connection: Connection, compiled: _Compiled, parameters: Any) -> list[tuple]:
        sql = compiled.sql
        cursor = connection.connection.driver_connection.cursor()
        try:
            for listener in connection.dispatch.before_cursor_execute:
                sql, parameters = listener(connection, cursor, sql, parameters, None, False)
            cursor.execute(sql, parameters)
            rows = cursor.fetchall()
            for listener in connection.dispatch.after_cursor_execute:
                listener(connection, cursor, sql, parameters, None, False)
            if compiled.result_processors is None:
                compiled.result_processors = tuple(
                    (index, processor) for index, (type_, column) in enumerate(
                        zip(compiled.types, cursor.description, strict=True))
                    if (processor := type_.dialect_impl(connection.dialect).result_processor(
                        connection.dialect, column[1])) is not None)
                compiled.processors_keep_null = all(
                    process(None) is None for _, process in compiled.result_processors)
        finally:
            cursor.close()
        processors = compiled.result_processors
        if not processors:
            return rows  # both drivers fetch a list of tuples
        made = []
        skips_nulls = compiled.processors_keep_null
        for row in rows:
            # Where every processor gives None for None, a NULL is left as it is, and a row
            # with only NULLs to convert stays the row fetched (the listings of a rep's list
            # have no timestamps).
            values_of_row = None
            for index, process in processors:
                value = row[index]
                if value is None and skips_nulls:
                    continue
                if values_of_row is None:
                    values_of_row = list(row)
                values_of_row[index] = process(value)
            made.append(row if values_of_row is None else tuple(values_of_row))
        return made
