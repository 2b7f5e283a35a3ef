"""One generic apsw virtual-table module that serves every provider as a live table.

The tables are eponymous (``SELECT * FROM aws_kms_key`` needs no CREATE VIRTUAL TABLE), so
nothing about them is ever written into a database file: a snapshot stays a plain SQLite
file that any SQLite tool opens.

Pushdown: ``xBestIndex`` tells SQLite which WHERE constraints the provider can answer
(a get key, region, account_id, list-API filters) and what that costs, so the planner picks
a get per key over a full listing, in joins too; ``xFilter`` turns the chosen constraints
into a :class:`~bedrock_sql.engine.ScanPlan`. SQLite re-checks every constraint itself
(we never set ``omit``), so a pushed filter only has to narrow.
"""

from __future__ import annotations

import json
from typing import Any

import apsw

from .engine import Engine, ScanPlan
from .providers.base import Table

EQ = apsw.SQLITE_INDEX_CONSTRAINT_EQ
OPERATORS = {
    EQ: "=",
    apsw.SQLITE_INDEX_CONSTRAINT_GT: ">",
    apsw.SQLITE_INDEX_CONSTRAINT_GE: ">=",
    apsw.SQLITE_INDEX_CONSTRAINT_LT: "<",
    apsw.SQLITE_INDEX_CONSTRAINT_LE: "<=",
}

# Relative costs for the planner: a listing pages through a unit and makes a detail call
# per item; a get is one call.
LIST_COST = 100_000.0
LIST_ROWS = 1_000
GET_COST = 10.0


def register(connection: apsw.Connection, engine: Engine, tables: dict[str, Table]) -> None:
    """Make every provider's table queryable, live, on ``connection``."""
    for table in tables.values():
        connection.create_module(
            table.name,
            _Module(table, engine),
            use_bestindex_object=True,
            eponymous_only=True,
            read_only=True,
        )


class _Module:
    def __init__(self, table: Table, engine: Engine):
        self.table = table
        self.engine = engine

    def Connect(self, connection, modulename, databasename, tablename, *args):
        schema = self.table.create_sql("x")
        return schema, _VirtualTable(self.table, self.engine)

    Create = Connect


class _VirtualTable:
    def __init__(self, table: Table, engine: Engine):
        self.table = table
        self.engine = engine
        self.names = table.column_names
        self.filters = {(f.column, f.operator): f for f in table.list_filters}

    def BestIndexObject(self, info: apsw.IndexInfo) -> bool:
        args: list[list[Any]] = []  # what each Filter argument means, in argv order
        get_column = None
        region_fraction = 1.0

        def use(i: int, meaning: list, as_set: bool) -> None:
            args.append(meaning)
            info.set_aConstraintUsage_argvIndex(i, len(args))
            if as_set:
                info.set_aConstraintUsage_in(i, True)

        for i in range(info.nConstraint):
            if not info.get_aConstraint_usable(i):
                continue
            op = OPERATORS.get(info.get_aConstraint_op(i))
            column_index = info.get_aConstraint_iColumn(i)
            if op is None or column_index < 0:
                continue
            column = self.names[column_index]
            in_list = op == "=" and info.get_aConstraintUsage_in(i)
            if op == "=" and column in self.table.get_columns and get_column in (None, column):
                get_column = column
                use(i, ["get", column], in_list)
            elif op == "=" and column in ("region", "account_id"):
                use(i, [column], in_list)
                region_fraction /= 4
            elif (column, op) in self.filters and not in_list:
                use(i, ["list", column, op], False)

        if get_column:
            info.estimatedCost = GET_COST
            info.estimatedRows = 1
        else:
            info.estimatedCost = LIST_COST * region_fraction
            info.estimatedRows = int(LIST_ROWS * region_fraction) or 1
        info.idxStr = json.dumps(args)
        return True

    def Open(self):
        return _Cursor(self)

    def Disconnect(self):
        pass

    Destroy = Disconnect

    def plan(self, idx_str: str, values: tuple) -> ScanPlan:
        plan = ScanPlan()
        for meaning, value in zip(json.loads(idx_str or "[]"), values):
            wanted = set(value) if isinstance(value, (set, frozenset)) else {value}
            kind = meaning[0]
            if kind == "get":
                keys = [v for v in wanted if isinstance(v, str)]
                plan.get_keys = keys if plan.get_keys is None else [k for k in plan.get_keys if k in keys]
            elif kind in ("region", "account_id"):
                attr = "regions" if kind == "region" else "accounts"
                current = getattr(plan, attr)
                setattr(plan, attr, wanted if current is None else current & wanted)
            else:
                flt = self.filters[(meaning[1], meaning[2])]
                try:
                    plan.list_params[flt.parameter] = flt.convert(value)
                except (TypeError, ValueError):
                    pass  # not a value the API understands: SQLite filters it alone
        return plan


class _Cursor:
    def __init__(self, vtable: _VirtualTable):
        self.vtable = vtable
        self.rows = None
        self.row = None
        self.rowid = 0

    def Filter(self, indexnum, indexname, constraintargs):
        self.Close()
        plan = self.vtable.plan(indexname, constraintargs)
        self.rows = self.vtable.engine.scan(self.vtable.table, plan)
        self.rowid = 0
        self.Next()

    def Next(self):
        self.row = next(self.rows, None)
        self.rowid += 1

    def Eof(self):
        return self.row is None

    def Column(self, number):
        return self.rowid if number == -1 else self.row[number]

    def Rowid(self):
        return self.rowid

    def Close(self):
        if self.rows is not None:
            self.rows.close()  # cancels the scan's outstanding work
            self.rows = None
