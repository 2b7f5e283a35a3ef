"""The declarative shape of a provider: one table, its columns, and how to fetch its rows.

A provider module declares a :class:`Table`; the generic virtual-table module
(:mod:`bedrock_sql.vtable`) and the collector serve every table from that declaration, so
no per-table plumbing is written twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterator

from ..aws import UnitApi

Item = dict[str, Any]

TEXT, INTEGER, REAL = "TEXT", "INTEGER", "REAL"


@dataclass(frozen=True)
class Column:
    """One column: its SQLite type, what it means, and where its value comes from.

    ``source`` is a key path into the fetched item ("a.b" descends into dicts) or a
    function of the item. Values are converted generically by :func:`to_sql`.
    """

    name: str
    type: str
    description: str
    source: str | Callable[[Item], Any] | None = None

    def value(self, item: Item) -> Any:
        if self.source is None:
            return None
        if callable(self.source):
            return to_sql(self.source(item))
        value: Any = item
        for part in self.source.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return to_sql(value)


@dataclass(frozen=True)
class ListFilter:
    """A WHERE constraint the list API accepts: (column, SQL operator) -> API parameter.

    SQLite still re-checks every row, so a filter only has to narrow, never to be exact.
    """

    column: str
    operator: str  # "=", ">", ">=", "<", "<="
    parameter: str
    convert: Callable[[Any], Any] = lambda v: v

    @staticmethod
    def time_range(column: str, *, after: str, before: str) -> tuple["ListFilter", ...]:
        """Push ``column >``/``>=``/``<``/``<=`` into an API's after/before parameters.

        The bounds are widened by a second so an API that treats them as exclusive cannot
        drop a row that SQLite's own re-check would keep. SQLite compares the stored text
        (``2026-11-28T12:00:00Z``), so a value spelled otherwise (a space for ``T``, as
        ``datetime()`` writes it; an offset; fractions) does not order the way its instant
        does: only its date does, so such a bound is widened to whole days.
        """
        lower = lambda v: _time_bound(v, upper=False) - timedelta(seconds=1)  # noqa: E731
        upper = lambda v: _time_bound(v, upper=True) + timedelta(seconds=1)  # noqa: E731
        return tuple(
            ListFilter(column, op, after if op[0] == ">" else before, lower if op[0] == ">" else upper)
            for op in (">", ">=", "<", "<=")
        )


@dataclass(frozen=True)
class Table:
    """A provider's declaration, in the spirit of Steampipe's table definitions.

    - ``list_items(api, params)`` yields summaries for one unit, ``params`` being the
      API parameters built from ``list_filters``;
    - ``hydrate_item(api, summary)`` turns one summary into the detailed item (one get
      per item, run concurrently by the engine); None when the summary is all there is.
      It returns None only for a genuine not-found (the resource was deleted between list
      and get: the collector notes it); any other failure raises ApiError, and the item
      keeps its listed row with an error against it;
    - ``get_item(api, key)`` returns one detailed item, or None when not found: it answers
      ``WHERE <one of get_columns> = ...`` without listing anything. A key that is an ARN
      is routed to the unit of that ARN's account and region.
    - ``key``: the columns that identify a row; the snapshot keeps one row per key (a
      duplicate is dropped and counted in the run's notes, never stored twice).
    - ``context_of``: tables (of the same service) whose resources this one only describes
      -- where a model came from, what serves it. By default the collector lists this table
      in a unit (account x region) only when one of them listed a resource there, or failed
      to list (``collect --model-context all``: everywhere; a live query: everywhere).
    """

    name: str
    description: str
    service: str
    columns: list[Column]
    list_items: Callable[[UnitApi, dict], Iterator[Item]]
    hydrate_item: Callable[[UnitApi, Item], Item | None] | None = None
    get_item: Callable[[UnitApi, str], Item | None] | None = None
    get_columns: tuple[str, ...] = ()
    list_filters: tuple[ListFilter, ...] = ()
    indexes: tuple[str, ...] = ()  # columns the snapshot indexes (join keys)
    hydrate_concurrency: int = 5  # detail calls in flight per unit (Bedrock's get quotas are low)
    title: Callable[[Item], Any] | str | None = None
    arn: str | None = None  # column holding the resource ARN (feeds akas)
    key: tuple[str, ...] = ()  # one snapshot row per key (a UNIQUE index); default: (arn,)
    context_of: tuple[str, ...] = ()  # listed by default only where these tables have resources

    def __post_init__(self) -> None:
        if not self.key and self.arn:
            object.__setattr__(self, "key", (self.arn,))
        unknown = [c for c in self.key if c not in self.column_names]
        if unknown:  # SQLite would read an unknown "column" as a string: one row in all
            raise ValueError(f"{self.name}: key column(s) {unknown} are not columns of the table")

    @property
    def all_columns(self) -> list[Column]:
        """The provider's columns followed by the common ones every table has."""
        return [*self.columns, *common_columns(self)]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.all_columns]

    def create_sql(self, qualified_name: str | None = None) -> str:
        cols = ", ".join(f'"{c.name}" {c.type}' for c in self.all_columns)
        return f'CREATE TABLE {qualified_name or self.name}({cols})'

    def row(self, api: UnitApi, item: Item) -> tuple:
        """The row for one item, in column order, with the unit's common columns filled."""
        enriched = {
            **item,
            "__account_id": api.account_id,
            "__region": api.region,
            "__partition": api.partition,
        }
        return tuple(c.value(enriched) for c in self.all_columns)


def common_columns(table: Table) -> list[Column]:
    """Columns every table has; title and akas derive from the table's declaration."""

    def title(item: Item) -> Any:
        if callable(table.title):
            return table.title(item)
        return _column_value(table, table.title, item) if table.title else None

    def akas(item: Item) -> Any:
        arn = _column_value(table, table.arn, item) if table.arn else None
        return [arn] if arn else []

    return [
        Column("account_id", TEXT, "The AWS account ID of the resource.", "__account_id"),
        Column("region", TEXT, "The AWS region of the resource.", "__region"),
        Column("partition", TEXT, "The AWS partition (aws, aws-cn, aws-us-gov).", "__partition"),
        Column("title", TEXT, "A human-readable name for the resource.", title),
        Column("akas", TEXT, "JSON array of the resource's ARNs (also-known-as).", akas),
    ]


def _column_value(table: Table, name: str, item: Item) -> Any:
    for column in table.columns:
        if column.name == name:
            return column.value(item)
    raise KeyError(f"{table.name} has no column {name}")


def to_sql(value: Any) -> Any:
    """Convert an API value to what the snapshot stores.

    Timestamps become ISO-8601 UTC text, dicts and lists JSON text (real UTF-8, not
    ``\\u00e9`` escapes), booleans 0/1.
    """
    if value is None or isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=_json_default, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def parse_time(value: Any) -> datetime:
    """ISO-8601 text (as the snapshot stores it, or a date) to an aware datetime.

    Raises ValueError for anything else, which makes the caller skip the pushdown.
    """
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


# Values that order as text exactly as they order in time against the stored timestamps.
_TEXT_ORDERED_TIME = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}Z?)?)?")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _time_bound(value: Any, *, upper: bool) -> datetime:
    """The instant an API bound may use for ``value`` without losing a row SQLite keeps.

    Raises ValueError when ``value`` is no timestamp (the filter is then not pushed).
    """
    if isinstance(value, str) and _TEXT_ORDERED_TIME.fullmatch(value):
        return parse_time(value)
    # If stored text s compares >= (or <=) value, then s's date does the same to value's
    # first ten characters: bound by that whole day.
    if not isinstance(value, str) or not _DATE.fullmatch(value[:10]):
        raise ValueError(f"not a timestamp: {value!r}")
    day = parse_time(value[:10])
    return day + timedelta(days=1) if upper else day


def iso_utc(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value)


def tags_to_dict(tags: list[dict] | None, key: str = "key", value: str = "value") -> dict:
    """AWS tag lists ([{key, value}] or [{TagKey, TagValue}]) as one JSON object."""
    return {t[key]: t[value] for t in tags or []}


def arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" else None


def arn_account(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 and parts[0] == "arn" else None

