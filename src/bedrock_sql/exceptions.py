"""Accepted exceptions (``check --exceptions FILE``): findings an auditor has accepted as a
known risk, until a date.

The file is YAML or JSON (by its extension; otherwise JSON when it starts with ``{``) with
the top-level key ``exceptions``, a list of entries, and optionally ``tag_keys_trusted``::

    tag_keys_trusted: [risk-accepted]  # optional: the only tag keys an entry may match by
    exceptions:
      - control: bedrock_custom_model_encrypted_with_cmk   # a control id, or a glob
        resource: "arn:aws:bedrock:*:*:custom-model/*/legacy-*"   # an ARN glob
        account: "123456789012"        # optional glob
        region: eu-*                   # optional glob
        tags: {team: claims}           # optional: every tag must be on the resource
        status: [alarm, info]          # optional: the statuses it accepts (default alarm, info)
        reason: Legacy model, retired when the new one ships.
        expires: 2026-12-31            # valid through the end of that day, UTC
        owner: ml-platform             # optional
        ticket: SEC-1234               # optional

A finding an entry matches keeps its status and gains ``muted`` 1 and ``mute_reason`` (the
reason, owner, ticket and expiry); the first matching entry (in file order) is the one named.
Muted findings do not fail the check. An entry accepts ``alarm`` and ``info`` findings unless
its ``status`` says otherwise: an ``error`` (a resource that could not be read) is muted only
by an entry that names ``error`` - accepting a known risk is not accepting not to look.

**Tags are the resource owner's word, not the auditor's.** An entry with ``tags`` is earned by
anyone who can tag the resource (``bedrock:TagResource``, tags given when it is created,
``kms:TagResource``...) in its account -- often the very team whose finding it mutes. So:

- without ``tag_keys_trusted``, tag-matched entries work as written, and every run warns once
  (one line naming them and their tag keys) that they trust whoever can tag;
- with ``tag_keys_trusted`` (a list of tag keys, ``[]`` for none), an entry matches by those
  keys only: one whose ``tags`` names another key mutes nothing and is reported, one line
  each. List only keys that IAM or an SCP lets nobody but you set (docs/audit-cycle.md);
- a finding muted by tags says so in its ``mute_reason`` (``matched by tag KEY=VALUE``).

An expired entry mutes nothing: each is reported once, as a warning. Anything doubtful in
the file - a missing reason or expiry, a date that is not YYYY-MM-DD, an unknown key (a typo
would silently widen or narrow what is muted), an unknown control id - is a
:class:`UserError` naming the entry. A control glob that matches no control is a warning
(the file may be shared by several checks, with several sets of ``--queries``).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import apsw

from .controls import STATUSES, Finding
from .errors import UserError

REQUIRED_KEYS = ("control", "resource", "reason", "expires")
OPTIONAL_KEYS = ("account", "region", "tags", "status", "owner", "ticket")
TOP_LEVEL_KEYS = ("exceptions", "tag_keys_trusted")
DEFAULT_STATUSES = ("alarm", "info")

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GLOB = re.compile(r"[*?\[]")


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


@dataclass(frozen=True)
class Entry:
    """One accepted exception of the file."""

    number: int  # 1-based position in the file's list
    control: str  # a control id or a glob of them
    resource: str  # an ARN glob
    reason: str
    expires: date  # valid through the end of this day, UTC
    account: str | None = None
    region: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    statuses: frozenset[str] = frozenset(DEFAULT_STATUSES)
    owner: str | None = None
    ticket: str | None = None

    @property
    def name(self) -> str:
        return f"entry {self.number} (control {self.control})"

    def expired(self, today: date) -> bool:
        return today > self.expires

    @property
    def note(self) -> str:
        """The finding's mute_reason: why, who, which ticket, on whose word (a tag), until when."""
        parts = [*self._who]
        if self.tags:
            parts.append("matched by tag " + ", ".join(f"{key}={value}" for key, value in self.tags))
        return f"{self.reason} ({'; '.join([*parts, f'accepted until {self.expires.isoformat()}'])})"

    @property
    def tag_keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.tags)

    @property
    def expiry_warning(self) -> str:
        who = f" ({'; '.join(self._who)})" if self._who else ""
        return f"{self.name} expired on {self.expires.isoformat()}, so its findings count again: {self.reason}{who}"

    @property
    def _who(self) -> list[str]:
        return [f"{name}: {value}" for name, value in (("owner", self.owner), ("ticket", self.ticket)) if value]

    def matches(self, finding: Finding, tags_of: Callable[[str], Mapping[str, str]]) -> bool:
        if finding.status not in self.statuses:
            return False
        if not fnmatchcase(finding.control.id, self.control):
            return False
        if not fnmatchcase(str(finding.resource or ""), self.resource):
            return False
        if self.account is not None and not fnmatchcase(str(finding.account_id or ""), self.account):
            return False
        if self.region is not None and not fnmatchcase(str(finding.region or ""), self.region):
            return False
        if self.tags:  # looked up last: the other keys are free to test
            tags = tags_of(str(finding.resource or ""))
            return all(tags.get(key) == value for key, value in self.tags)
        return True


@dataclass(frozen=True)
class ExceptionFile:
    """The entries of an exceptions file, split by whether they are still valid."""

    path: str
    active: tuple[Entry, ...]
    expired: tuple[Entry, ...]
    unmatched: tuple[Entry, ...]  # a control glob that names no control
    # tag_keys_trusted as given (None: the file has none, and tag-matched entries trust any tagger).
    tag_keys_trusted: frozenset[str] | None = None
    # Not expired, but matching by a tag key tag_keys_trusted does not list: they mute nothing.
    untrusted: tuple[Entry, ...] = ()

    def warnings(self) -> list[str]:
        lines = [f"--exceptions {self.path}: {entry.expiry_warning}" for entry in self.expired]
        lines += [f"--exceptions {self.path}: {entry.name}: the glob matches no control" for entry in self.unmatched]
        for entry in self.untrusted:
            keys = ", ".join(repr(k) for k in entry.tag_keys if k not in (self.tag_keys_trusted or ()))
            lines.append(f"--exceptions {self.path}: {entry.name} mutes nothing: it matches by tag key {keys}, "
                         "which tag_keys_trusted does not list")
        by_tag = [entry for entry in self.active if entry.tags]
        if by_tag and self.tag_keys_trusted is None:
            keys = sorted({key for entry in by_tag for key in entry.tag_keys})
            which = ", ".join(str(entry.number) for entry in by_tag)
            one = len(by_tag) == 1
            lines.append(
                f"--exceptions {self.path}: {'entry' if one else 'entries'} {which} {'matches' if one else 'match'} "
                f"by tag ({', '.join(keys)}): anyone who can tag a resource can earn {'it' if one else 'them'}; "
                "list the tag keys only you can set in tag_keys_trusted (see docs/audit-cycle.md, Accepting a risk)")
        return lines

    def muter(self, connection: apsw.Connection) -> Muter:
        return Muter(self.active, ResourceTags(connection))


class Muter:
    """Marks the findings an active entry covers (see :meth:`apply`)."""

    def __init__(self, entries: Sequence[Entry], tags: ResourceTags):
        self.entries = entries
        self.tags = tags

    def apply(self, finding: Finding) -> Finding:
        """The finding, muted with the first matching entry's note, or as it was."""
        for entry in self.entries:
            if entry.matches(finding, self.tags.of):
                return replace(finding, muted=1, mute_reason=entry.note)
        return finding


class ResourceTags:
    """The tags of a resource, by ARN, from the snapshot's tables.

    A control row need not carry tags; every table with ``arn`` and ``tags`` columns does
    (ARN is their unique, indexed key). The tables are found once, and each ARN is looked up
    once, only when an entry with ``tags`` otherwise matches one of its findings.
    """

    def __init__(self, connection: apsw.Connection):
        self.connection = connection
        self._seen: dict[str, Mapping[str, str]] = {}

    @functools.cached_property
    def _sql(self) -> str | None:
        tables = [
            name for (name,) in self.connection.execute(
                "SELECT t.name FROM sqlite_schema t WHERE t.type = 'table' "
                "AND EXISTS (SELECT 1 FROM pragma_table_info(t.name) c WHERE c.name = 'arn') "
                "AND EXISTS (SELECT 1 FROM pragma_table_info(t.name) c WHERE c.name = 'tags') ORDER BY t.name"
            )
        ]
        if not tables:
            return None
        parts = " UNION ALL ".join(f'SELECT tags FROM "{table}" WHERE arn = ?1' for table in tables)
        return f"SELECT tags FROM ({parts}) WHERE tags IS NOT NULL LIMIT 1"

    def of(self, arn: str) -> Mapping[str, str]:
        if arn not in self._seen:
            row = self.connection.execute(self._sql, (arn,)).fetchone() if arn and self._sql else None
            self._seen[arn] = _tag_map(row[0]) if row else {}
        return self._seen[arn]


def _tag_map(text: Any) -> dict[str, str]:
    """A tags column as {key: value}: a JSON object, or a list of {Key, Value} (AWS's shape).
    Unreadable tags are no tags: an entry with ``tags`` then mutes nothing."""
    try:
        value = json.loads(text) if isinstance(text, (str, bytes)) else text
    except ValueError:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {
            str(item.get("Key", item.get("TagKey"))): str(item.get("Value", item.get("TagValue")))
            for item in value if isinstance(item, dict)
        }
    return {}


# --- reading the file ------------------------------------------------------------------------


def load_exceptions(path: str | Path, control_ids: Iterable[str], today: date | None = None) -> ExceptionFile:
    """Read and check an exceptions file; ``control_ids`` are every control known (bundled
    and ``--queries``), so one file serves checks of any subset of them."""
    name = str(path)
    document = _read(Path(path), name)
    if not isinstance(document, dict) or "exceptions" not in document:
        raise UserError(f"--exceptions {name}: the file must hold the key 'exceptions': a list of entries "
                        "(and optionally 'tag_keys_trusted')")
    unknown = sorted(str(k) for k in document if k not in TOP_LEVEL_KEYS)
    if unknown:
        raise UserError(f"--exceptions {name}: unknown top-level key {unknown[0]!r} (allowed: exceptions, "
                        "tag_keys_trusted)")
    trusted = _trusted_keys(document, name)
    items = document["exceptions"]
    if items is None:
        items = []
    if not isinstance(items, list):
        raise UserError(f"--exceptions {name}: 'exceptions' must be a list of entries")
    known = set(control_ids)
    entries = [_entry(item, number, known, name) for number, item in enumerate(items, start=1)]
    today = today or today_utc()
    valid = [e for e in entries if not e.expired(today)]

    def untrusted(entry: Entry) -> bool:
        return trusted is not None and not set(entry.tag_keys) <= trusted

    return ExceptionFile(
        path=name,
        active=tuple(e for e in valid if not untrusted(e)),
        expired=tuple(e for e in entries if e.expired(today)),
        unmatched=tuple(e for e in entries if _GLOB.search(e.control) and not any(fnmatchcase(i, e.control) for i in known)),
        tag_keys_trusted=trusted,
        untrusted=tuple(e for e in valid if untrusted(e)),
    )


def _trusted_keys(document: dict, name: str) -> frozenset[str] | None:
    """``tag_keys_trusted``: None when the file has none; else the keys (an empty list trusts none)."""
    if "tag_keys_trusted" not in document:
        return None
    value = document["tag_keys_trusted"]
    if not isinstance(value, list) or not all(isinstance(k, str) and k.strip() for k in value):
        raise UserError(f"--exceptions {name}: tag_keys_trusted must be a list of tag keys ([] trusts none), "
                        f"not {value!r}")
    return frozenset(value)


def _read(path: Path, name: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"--exceptions {name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--exceptions {name}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    suffix = path.suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and text.lstrip().startswith("{")):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise UserError(f"--exceptions {name}: not valid JSON: {exc}") from None
    import yaml  # only when a YAML file is given

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"--exceptions {name}: not valid YAML{where}: {problem}") from None
    except ValueError as exc:  # a date YAML recognises but cannot build: 2026-02-30
        raise UserError(f"--exceptions {name}: not valid YAML: {exc}") from None


def _entry(item: Any, number: int, known: set[str], name: str) -> Entry:
    label = f"--exceptions {name}: entry {number}"
    if not isinstance(item, dict):
        raise UserError(f"{label}: an entry is a mapping of keys (control, resource, reason, expires, ...)")
    control = item.get("control")
    if isinstance(control, str) and control.strip():
        label += f" (control {control})"
    unknown = sorted(str(k) for k in item if k not in (*REQUIRED_KEYS, *OPTIONAL_KEYS))
    if unknown:
        allowed = ", ".join((*REQUIRED_KEYS, *OPTIONAL_KEYS))
        raise UserError(f"{label}: unknown key {unknown[0]!r} (allowed: {allowed})")
    missing = [key for key in REQUIRED_KEYS if item.get(key) in (None, "")]
    if missing:
        raise UserError(f"{label}: missing {', '.join(missing)} (every entry needs control, resource, reason and expires)")
    control = _text(item["control"], "control", label)
    if not _GLOB.search(control) and control not in known:
        raise UserError(f"{label}: unknown control {control!r}: `bedrock-sql controls` lists them")
    return Entry(
        number=number,
        control=control,
        resource=_text(item["resource"], "resource", label),
        reason=_text(item["reason"], "reason", label),
        expires=_date(item["expires"], label),
        account=_account(item.get("account"), label),
        region=_optional_text(item.get("region"), "region", label),
        tags=_tags(item.get("tags"), label),
        statuses=_statuses(item.get("status"), label),
        owner=_optional_text(item.get("owner"), "owner", label),
        ticket=_optional_text(item.get("ticket"), "ticket", label, numbers=True),
    )


def _text(value: Any, key: str, label: str, *, numbers: bool = False) -> str:
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{label}: {key} must be text, not {value!r}")
    return value.strip()


def _optional_text(value: Any, key: str, label: str, *, numbers: bool = False) -> str | None:
    return None if value is None else _text(value, key, label, numbers=numbers)


def _account(value: Any, label: str) -> str | None:
    # YAML reads unquoted digits as a number, and 0-leading ones as octal: only a number that
    # still has an account ID's 12 digits is taken as one.
    if isinstance(value, int) and not isinstance(value, bool):
        if len(str(value)) != 12:
            raise UserError(f"{label}: account {value!r} is not a 12-digit account ID: quote it ('0123...')")
        return str(value)
    return _optional_text(value, "account", label)


def _date(value: Any, label: str) -> date:
    if isinstance(value, datetime):  # YAML reads a date with a time as a datetime
        raise UserError(f"{label}: expires must be a date, YYYY-MM-DD (no time: it is valid through that day, UTC)")
    if isinstance(value, date):  # YAML reads an unquoted YYYY-MM-DD as a date
        return value
    if isinstance(value, str) and _DATE.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise UserError(f"{label}: expires must be a date, YYYY-MM-DD, not {value!r}")


def _tags(value: Any, label: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        raise UserError(f"{label}: tags must be a mapping of tag keys to values")
    tags = []
    for key, tag_value in value.items():
        if isinstance(tag_value, bool) or not isinstance(tag_value, (str, int, float)):
            raise UserError(f"{label}: tag {key!r} must have a text value (quote it), not {tag_value!r}")
        tags.append((str(key), str(tag_value)))
    return tuple(tags)


def _statuses(value: Any, label: str) -> frozenset[str]:
    if value is None:
        return frozenset(DEFAULT_STATUSES)
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise UserError(f"{label}: status must be a status or a list of them ({', '.join(STATUSES)})")
    bad = [v for v in values if v not in STATUSES]
    if bad:
        raise UserError(f"{label}: status {bad[0]!r} is not one of {', '.join(STATUSES)}")
    return frozenset(values)
