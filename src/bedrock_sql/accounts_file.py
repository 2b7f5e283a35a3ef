"""The accounts file (``--accounts-file``): which accounts to audit, and how to reach each.

CSV (a header row) or JSON (an array of objects), with the same keys:

- ``account_id``  optional; the 12-digit account the entry must reach (checked against STS)
- ``role_arn``    a role to assume (from the entry's ``profile`` if given, else from
                  ``--profile`` or the ambient credentials)
- ``profile``     an AWS config profile; alone, the account is scanned with its credentials
- ``regions``     optional; overrides ``--region``/``--all-regions`` for this account
                  (separated by spaces, semicolons or commas; a JSON array works too)
- ``external_id`` optional; the external ID for this entry's ``role_arn`` (default
                  ``--external-id``)

Every mistake is a :class:`UserError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import UserError

COLUMNS = ("account_id", "role_arn", "profile", "regions", "external_id")

ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]+$", re.ASCII)
_REGION_SEPARATORS = re.compile(r"[\s;,]+")


@dataclass(frozen=True)
class AccountEntry:
    """One account of the file, and where it was written (for error messages)."""

    where: str  # "accounts.csv line 3"
    account_id: str | None = None
    role_arn: str | None = None
    profile: str | None = None
    regions: tuple[str, ...] = ()
    external_id: str | None = None


def role_arn_account(role_arn: str) -> str | None:
    """The account of a role ARN, or None when it is not a role ARN."""
    match = ROLE_ARN.match(role_arn)
    return match.group(2) if match else None


def read_accounts_file(path: str | Path, valid_regions: Callable[[], set[str]]) -> list[AccountEntry]:
    """Parse and validate the accounts file at ``path`` (CSV, or JSON by content or name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"--accounts-file {path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"--accounts-file {path}: is a directory") from None
    except OSError as exc:
        raise UserError(f"--accounts-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"--accounts-file {path}: not UTF-8 text") from None
    is_json = path.suffix.lower() == ".json" or (path.suffix.lower() != ".csv" and text.lstrip().startswith("["))
    raw = _read_json(path.name, text) if is_json else _read_csv(path.name, text)
    regions: set[str] | None = None

    def known_regions() -> set[str]:
        nonlocal regions
        if regions is None:
            regions = valid_regions()
        return regions

    entries = [_entry(where, values, known_regions) for where, values in raw]
    if not entries:
        raise UserError(f"--accounts-file {path}: lists no accounts")
    return entries


def _read_csv(name: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows = []
    try:
        for cells in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
                continue  # blank lines and comments
            if header is None:
                header = [cell.strip().lower() for cell in cells]
                _check_columns(f"{name} line {line}", header)
                continue
            if len(cells) > len(header):
                raise UserError(f"{name} line {line}: {len(cells)} values but the header names {len(header)} columns")
            rows.append((f"{name} line {line}", dict(zip(header, cells))))
    except csv.Error as exc:
        raise UserError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise UserError(f"--accounts-file {name}: lists no accounts (expected a header row: {', '.join(COLUMNS)})")
    return rows


def _check_columns(where: str, header: list[str]) -> None:
    for column in header:
        if column not in COLUMNS:
            raise UserError(f"{where}: unknown column {column!r} (expected {', '.join(COLUMNS)})")
        if header.count(column) > 1:
            raise UserError(f"{where}: column {column!r} appears twice")
    if "role_arn" not in header and "profile" not in header:
        raise UserError(f"{where}: needs a role_arn or a profile column")


def _read_json(name: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{name} line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list):
        raise UserError(f"{name}: expected a JSON array of objects with keys {', '.join(COLUMNS)}")
    rows = []
    for offset, item in zip(_element_offsets(text), data):
        where = f"{name} line {text.count(chr(10), 0, offset) + 1}"
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected an object with keys {', '.join(COLUMNS)}")
        for key in item:
            if key not in COLUMNS:
                raise UserError(f"{where}: unknown key {key!r} (expected {', '.join(COLUMNS)})")
        rows.append((where, item))
    return rows


def _element_offsets(text: str) -> list[int]:
    """Where each element of the (valid) top-level JSON array starts, to name its line."""
    decoder = json.JSONDecoder()
    whitespace = re.compile(r"[\s,]*")
    index = whitespace.match(text, 0).end() + 1  # past '['
    offsets = []
    while True:
        index = whitespace.match(text, index).end()
        if index >= len(text) or text[index] == "]":
            return offsets
        offsets.append(index)
        _, index = decoder.raw_decode(text, index)


def _text(where: str, key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key == "account_id" and isinstance(value, int) and not isinstance(value, bool):
        value = f"{value:012d}"
    if not isinstance(value, str):
        raise UserError(f"{where}: {key} must be text, not {json.dumps(value)}")
    return value.strip() or None


def _entry(where: str, values: dict[str, Any], known_regions: Callable[[], set[str]]) -> AccountEntry:
    account_id = _text(where, "account_id", values.get("account_id"))
    role_arn = _text(where, "role_arn", values.get("role_arn"))
    profile = _text(where, "profile", values.get("profile"))
    external_id = _text(where, "external_id", values.get("external_id"))
    raw_regions = values.get("regions")
    if isinstance(raw_regions, list):
        regions = [_text(where, "regions", r) for r in raw_regions]
        regions = [r for r in regions if r]
    else:
        text = _text(where, "regions", raw_regions) or ""
        regions = [r for r in _REGION_SEPARATORS.split(text) if r]

    if account_id is not None and not ACCOUNT_ID.match(account_id):
        raise UserError(f"{where}: account_id {account_id!r} is not a 12-digit AWS account ID")
    if role_arn is None and profile is None:
        raise UserError(f"{where}: give a role_arn or a profile")
    if role_arn is not None:
        role_account = role_arn_account(role_arn)
        if role_account is None:
            raise UserError(f"{where}: role_arn {role_arn!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
        if account_id is not None and role_account != account_id:
            raise UserError(f"{where}: account_id {account_id} but role_arn {role_arn} is in account {role_account}")
    elif external_id is not None:
        raise UserError(f"{where}: external_id is only used with a role_arn")
    for region in regions:
        if region not in known_regions():
            raise UserError(f"{where}: unknown AWS region {region!r}")
    return AccountEntry(
        where=where,
        account_id=account_id,
        role_arn=role_arn,
        profile=profile,
        regions=tuple(dict.fromkeys(regions)),
        external_id=external_id,
    )
