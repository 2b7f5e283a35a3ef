"""The project's one analysis of IAM/KMS resource policies: their canonical form, and which
statements grant the public.

``canonical(policy)`` is Steampipe's ``policy_std``, the shape the Steampipe AWS plugin gives
(its ``aws/canonical_policy.go``), so a query written against Steampipe's ``policy_std`` reads
ours the same way: ``Statement`` always an array; ``Principal``/``NotPrincipal`` an object of
sorted, de-duplicated arrays (a string principal ``"*"`` becomes ``{"AWS": ["*"]}``);
``Action``/``NotAction`` lower-cased (IAM matches actions case-insensitively), sorted and
de-duplicated; ``Resource``/``NotResource`` sorted and de-duplicated, case kept; condition
operators as written, condition keys lower-cased, their values sorted, de-duplicated arrays of
strings (``true`` -> ``"true"``, ``42`` -> ``"42"``); member names matched case-insensitively as
Go's encoding/json does; unknown members dropped; empty arrays, objects and ``Sid``/``Id``
omitted. Where a document makes the Go code panic or print Go's debugging form of a value
(``"<nil>"``, ``"map[a:b]"``), or has no ``Statement``, we raise ``PolicyError`` instead.
One deliberate difference outside this function: Steampipe's ``aws_kms_key.policy_std`` first
URL-unescapes the policy text (``+`` becomes a space); KMS returns plain JSON, so we do not.

``public_statements(policy)`` finds the statements that grant the public: an ``Allow`` whose
principal includes ``*`` in any form (``"*"``, ``{"AWS": "*"}``, ``{"AWS": ["*", ...]}``, any
principal type, any key case) or that uses ``NotPrincipal`` (everyone but the listed, which
the IAM User Guide advises against), unless a condition ties the caller to known accounts or
organizations. Decisions, from the IAM
User Guide's pages on global condition keys, condition operators and the Principal element:

- Only keys that name the caller's account, organization or identity count:
  ``kms:CallerAccount``, ``aws:PrincipalAccount``, ``aws:PrincipalOrgID``,
  ``aws:PrincipalOrgPaths``, ``aws:PrincipalArn``, ``aws:SourceAccount``, ``aws:SourceOwner``,
  ``aws:SourceArn``, ``aws:SourceOrgID``, ``aws:SourceOrgPaths``, ``aws:userid`` -- under
  ``StringEquals``, ``StringEqualsIgnoreCase``, ``StringLike``, ``ArnEquals``, ``ArnLike``
  (any case, ``ForAnyValue:``/``ForAllValues:`` prefixes, ``IfExists`` suffix). Negated
  operators, ``Null``, ``Bool`` and every other key (``aws:SecureTransport``, ``aws:SourceIp``,
  ``aws:SourceVpc(e)``, ``kms:ViaService``, ``kms:EncryptionContext*``...) do not.
- ``aws:username`` does not: user names are unique only within an account, so anyone can
  create a user of that name in an account of their own.
- ``...IfExists`` and ``ForAllValues:`` are true when the key is absent from the request, so
  they restrict only for keys AWS puts in every signed request (``aws:PrincipalAccount``,
  ``aws:PrincipalArn``, ``aws:userid``, ``kms:CallerAccount``). Every KMS request is signed;
  for a policy that admits anonymous requests (an S3 bucket policy) even these are absent.
- Every value must pin the account or organization: no ``*``/``?`` (even under ``...Equals``,
  where they are literal, a policy author writing them meant "any") and no ``${...}`` policy
  variable in the account ID, the organization ID (first segment of an org path), the unique
  ID before ``:`` of an ``aws:userid``, or the account field of an ARN -- and, under a string
  operator, in the ARN fields before the account, since a string wildcard can span colons
  (ARN operators match field by field). An ARN with no account field names no account.
- A principal cannot hold a wildcard other than a lone ``*`` (AWS rejects
  ``arn:aws:iam::*:root``), so only ``*`` counts as the wildcard principal.
- ``Deny`` statements never grant; ``Effect`` is compared case-insensitively.

policyuniverse (Netflix; 1.5.1, 2023-11) was tried on this module's public-statement cases
and not adopted: it differs on 76 of 232. It passes statements we call public -- limited only by
``aws:SourceIp``, ``aws:SourceVpc(e)``, an ``IfExists``/``ForAllValues:`` condition on
``aws:PrincipalOrgID``/``aws:SourceAccount``/``aws:SourceArn``, ``aws:userid`` ``AROA*``, ``?``
wildcards, policy variables, or written with ``{"aws": "*"}`` or ``"Effect": "allow"`` -- and
alarms on statements limited by ``aws:SourceOrgID``/``aws:SourceOrgPaths`` (keys it does not
know) or an exact ``aws:userid``, or that pair a restricting condition with a wildcard one. It
also raises on an account ID written as a JSON number and reads a policy without
``Statement`` as not public instead of refusing it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


class PolicyError(ValueError):
    """The text or data is not a JSON policy document. The caller records it: it is never a
    policy "without statements"."""


@dataclass(frozen=True)
class PublicStatement:
    """A statement that grants the public."""

    index: int  # 0-based position in Statement
    sid: str | None
    principals: tuple[str, ...]  # the wildcard forms found: "*", "AWS:*", "NotPrincipal"
    # A sentence fragment (no final period) naming the statement, counted from 1 as a reader
    # counts ("#2" is index 1), and why it is public.
    reason: str


# Member names of Steampipe's Go structs, in their (alphabetical) field order, which is the
# order of the keys in Go's JSON and in ours.
_POLICY_FIELDS = ("Id", "Statement", "Version")
_STATEMENT_FIELDS = ("Action", "Condition", "Effect", "NotAction", "NotPrincipal", "NotResource", "Principal", "Resource", "Sid")
# Go leaves a string field unset when the JSON member is null.
_STRING_FIELDS = frozenset({"Id", "Version", "Effect", "Sid"})


class _JsonObject(dict):
    """A JSON object that keeps its members in document order, repeated names included: Go
    fills a field from each matching member in turn, so of "Effect" and "effect" the last wins."""

    def __init__(self, pairs: list[tuple[str, Any]]):
        super().__init__(pairs)
        self.pairs = pairs


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _not_a_json_constant(name: str):
    raise PolicyError(f"the policy is not JSON ({name} is not a JSON value)")


def _document(policy: Any) -> Mapping:
    if isinstance(policy, (bytes, bytearray)):
        try:
            policy = policy.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PolicyError(f"the policy is not UTF-8 text ({error})") from None
    if isinstance(policy, str):
        try:
            policy = json.loads(policy, object_pairs_hook=_JsonObject, parse_constant=_not_a_json_constant)
        except (ValueError, RecursionError) as error:  # JSONDecodeError is a ValueError
            if isinstance(error, PolicyError):
                raise
            raise PolicyError(f"the policy is not JSON ({error})") from None
    if not isinstance(policy, Mapping):
        raise PolicyError(f"the policy is {_what(policy)}, not a JSON object")
    return policy


def _members(obj: Mapping, fields: tuple[str, ...]) -> dict[str, Any]:
    """The members of ``obj`` that fill ``fields``, matched as Go's encoding/json matches JSON
    names to struct fields: case-insensitively (str.casefold covers Go's folding of ``ſ`` and
    the Kelvin sign for these names), the last match winning, unknown names ignored. (Go
    merges a repeated Condition member into one map; here the last replaces the others.)"""
    by_folded_name = {field.casefold(): field for field in fields}
    found: dict[str, Any] = {}
    for name, value in getattr(obj, "pairs", None) or obj.items():
        field = by_folded_name.get(name.casefold()) if isinstance(name, str) else None
        if field is None or (value is None and field in _STRING_FIELDS):
            continue
        found[field] = value
    return found


def _go_lower(text: str) -> str:
    """Go's strings.ToLower: each character's simple lower case. str.lower() differs for
    U+0130 (two characters) and a word-final capital sigma (Go keeps σ)."""
    if text.isascii():
        return text.lower()
    return "".join("i" if char == "\u0130" else char.lower() for char in text)


def _text(value: Any, where: str) -> str:
    """A value as go-kit's types.ToString writes what encoding/json decoded: strings as they
    are, booleans as true/false, numbers (float64) in shortest plain decimal (``1e21`` is
    ``1000000000000000000000``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise PolicyError(f"{where} holds a number out of range")
        return format(Decimal(repr(number)).normalize(), "f")
    raise PolicyError(f"{where} holds {_what(value)}; values are strings, numbers or booleans")


def _texts(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, (list, tuple)) else [value]
    return [_text(item, where) for item in items]


def _sorted_set(texts) -> list[str]:
    return sorted(set(texts))


def _string_field(members: dict[str, Any], field: str, where: str) -> str:
    value = members.get(field, "")
    if not isinstance(value, str):
        raise PolicyError(f"{where}{field} is {_what(value)}, not a string")
    return value


def _principal(value: Any, where: str) -> dict[str, list[str]]:
    if isinstance(value, str):
        return {"AWS": [value]}
    if isinstance(value, Mapping):
        return {kind: _sorted_set(_texts(value[kind], f"{where}.{kind}")) for kind in sorted(value)}
    raise PolicyError(f'{where} is {_what(value)}; a principal is "*" or an object of principal types')


def _condition(value: Any, where: str) -> dict[str, dict[str, list[str]]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PolicyError(f"{where} is {_what(value)}, not an object of condition operators")
    operators = {}
    for operator in sorted(value):
        block = value[operator]
        if not isinstance(block, Mapping):
            raise PolicyError(f"{where}.{operator} is {_what(block)}, not an object of condition keys")
        # Keys differing only in case are one key to IAM; Steampipe keeps one of them at random
        # (Go map order), we keep the values of both.
        keys: dict[str, set[str]] = {}
        for key in block:
            keys.setdefault(_go_lower(key), set()).update(_texts(block[key], f"{where}.{operator}.{key}"))
        operators[operator] = {key: sorted(keys[key]) for key in sorted(keys)}
    return operators


def _canonical_statement(members: dict[str, Any], where: str) -> dict[str, Any]:
    def present(field: str) -> Any:
        value = members[field]
        if value is None:
            raise PolicyError(f"{where}.{field} is null")
        return value

    statement: dict[str, Any] = {}
    for field in _STATEMENT_FIELDS:
        if field in ("Effect", "Sid"):
            value: Any = _string_field(members, field, where + ".")
            if field == "Effect" or value:
                statement[field] = value
        elif field not in members:
            continue
        elif field == "Condition":
            value = _condition(members[field], f"{where}.Condition")
            if value:
                statement[field] = value
        elif field in ("Principal", "NotPrincipal"):
            value = _principal(present(field), f"{where}.{field}")
            if value:
                statement[field] = value
        else:
            texts = _texts(present(field), f"{where}.{field}")
            value = _sorted_set(_go_lower(text) for text in texts) if field.endswith("Action") else _sorted_set(texts)
            if value:
                statement[field] = value
    return statement


def _parse(policy: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the document's own members, each statement's members)."""
    document = _members(_document(policy), _POLICY_FIELDS)
    for field in ("Id", "Version"):
        _string_field(document, field, "")
    if document.get("Statement") is None:
        raise PolicyError("the policy has no Statement")
    statements = document["Statement"]
    if isinstance(statements, Mapping):
        statements = [statements]
    elif not isinstance(statements, (list, tuple)):
        raise PolicyError(f"Statement is {_what(statements)}, not an object or an array of objects")
    parsed = []
    for index, statement in enumerate(statements):
        if not isinstance(statement, Mapping):
            raise PolicyError(f"Statement[{index}] is {_what(statement)}, not an object")
        parsed.append(_members(statement, _STATEMENT_FIELDS))
    return document, parsed


def canonical(policy: Any) -> dict[str, Any]:
    """Steampipe's ``policy_std`` of a policy given as JSON text or as a decoded object."""
    document, statements = _parse(policy)
    std: dict[str, Any] = {}
    policy_id = _string_field(document, "Id", "")
    if policy_id:
        std["Id"] = policy_id
    std["Statement"] = [_canonical_statement(members, f"Statement[{index}]") for index, members in enumerate(statements)]
    std["Version"] = _string_field(document, "Version", "")
    return std


# Keys that name the caller, lower-cased, and what their values are.
_ACCOUNT, _ORGANIZATION, _ORG_PATH, _ARN, _UNIQUE_ID = "account", "organization", "org path", "arn", "unique id"
_CALLER_KEYS = {
    "kms:calleraccount": _ACCOUNT,
    "aws:principalaccount": _ACCOUNT,
    "aws:sourceaccount": _ACCOUNT,
    "aws:sourceowner": _ACCOUNT,
    "aws:principalorgid": _ORGANIZATION,
    "aws:sourceorgid": _ORGANIZATION,
    "aws:principalorgpaths": _ORG_PATH,
    "aws:sourceorgpaths": _ORG_PATH,
    "aws:principalarn": _ARN,
    "aws:sourcearn": _ARN,
    "aws:userid": _UNIQUE_ID,
}
# In every signed request, so an IfExists or ForAllValues condition on them still restricts.
_IN_EVERY_SIGNED_REQUEST = frozenset({"kms:calleraccount", "aws:principalaccount", "aws:principalarn", "aws:userid"})
_MATCHING_OPERATORS = frozenset({"stringequals", "stringequalsignorecase", "stringlike", "arnequals", "arnlike"})
_SET_QUALIFIERS = frozenset({"", "foranyvalue", "forallvalues"})
_OPEN = re.compile(r"[*?]|\$\{")


def _open_value(value: str, kind: str, field_wise: bool) -> str | None:
    """Why ``value`` does not pin one known account or organization, or None when it does."""
    if kind == _ARN:
        fields = value.split(":", 5)
        if len(fields) < 6 or fields[0] != "arn":
            return "not an ARN" if not _OPEN.search(value) else "a wildcard"
        if not fields[4]:
            return "names no account"
        if not field_wise and _OPEN.search(":".join(fields[:4])):
            return "a wildcard before the account, which a string operator lets span colons"
        part = fields[4]
    elif kind == _ORG_PATH:
        # Root and OU IDs are unique only within an organization; the path must start with one.
        part = value.split("/", 1)[0]
        if part and not _OPEN.search(part) and not part.lower().startswith("o-"):
            return "does not start with an organization ID"
    elif kind == _UNIQUE_ID:
        part = value.split(":", 1)[0]
    else:
        part = value
    if not part:
        return "empty"
    if "${" in part:
        return "a policy variable"
    return "a wildcard" if _OPEN.search(part) else None


def _condition_note(operator: str, key: str, values: list[str]) -> str | None:
    """None when this condition ties the caller to known accounts or organizations, otherwise
    how the reason lists it."""
    lowered = key.lower()
    if lowered == "aws:username":
        return f"{key} (user names repeat across accounts)"
    kind = _CALLER_KEYS.get(lowered)
    if kind is None:
        return key
    qualifier, _, base = operator.lower().rpartition(":")
    if_exists = base.endswith("ifexists")
    base = base.removesuffix("ifexists")
    if qualifier not in _SET_QUALIFIERS or base not in _MATCHING_OPERATORS:
        return f"{key} under {operator}" + (" (a negation)" if "not" in base else "")
    if (if_exists or qualifier == "forallvalues") and lowered not in _IN_EVERY_SIGNED_REQUEST:
        return f"{key} under {operator} (true for requests without the key)"
    if not values:
        return f"{key} under {operator} with no value"
    for value in values:
        why = _open_value(value, kind, field_wise=base.startswith("arn"))
        if why:
            return f"{key} {json.dumps(value)} under {operator} ({why})"
    return None


def _wildcard_principals(members: dict[str, Any], std: dict[str, Any]) -> tuple[str, ...]:
    found: list[str] = []
    if "Principal" in std:
        if members["Principal"] == "*":
            found.append("*")
        else:
            found.extend(f"{kind}:*" for kind, values in std["Principal"].items() if "*" in values)
    if std.get("NotPrincipal"):
        found.append("NotPrincipal")
    return tuple(found)


def _public(index: int, members: dict[str, Any], std: dict[str, Any]) -> PublicStatement | None:
    if std["Effect"].casefold() != "allow":
        return None
    principals = _wildcard_principals(members, std)
    if not principals:
        return None
    notes = []
    for operator, block in (members.get("Condition") or {}).items():
        # Keys differing only in case are one key (as in the canonical form): all their values
        # must pin the caller. The reason shows the first spelling.
        keys: dict[str, tuple[str, list[str]]] = {}
        for key, value in block.items():
            keys.setdefault(key.lower(), (key, []))[1].extend(_texts(value, key))
        for key, values in keys.values():
            note = _condition_note(operator, key, values)
            if note is None:
                return None
            notes.append(note)
    sid = std.get("Sid")
    label = f'statement "{sid}" (#{index + 1})' if sid else f"statement #{index + 1}"
    wildcards = [form for form in principals if form != "NotPrincipal"]
    if wildcards:
        grant = "allows principal " + " and ".join(wildcards)
    else:
        grant = "allows every principal except those in NotPrincipal (Allow with NotPrincipal, which AWS advises against)"
    if notes:
        limits = f" and no condition limits the caller to known accounts or organizations (its conditions: {', '.join(notes)})"
    else:
        limits = " with no condition"
    return PublicStatement(index=index, sid=sid, principals=principals, reason=f"{label} {grant}{limits}")


def public_statements(policy: Any) -> list[PublicStatement]:
    """The statements of ``policy`` (JSON text or a decoded object) that grant the public, in
    document order. Raises PolicyError when it is not a policy document."""
    _, statements = _parse(policy)
    found = []
    for index, members in enumerate(statements):
        public = _public(index, members, _canonical_statement(members, f"Statement[{index}]"))
        if public is not None:
            found.append(public)
    return found


def is_public(policy: Any) -> bool:
    """Whether a statement of ``policy`` grants the public (see public_statements)."""
    return bool(public_statements(policy))
