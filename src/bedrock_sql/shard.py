"""Sharding a collect across machines: ``collect --shard I/N`` collects the accounts whose
shard is I, and ``merge`` folds the N snapshots into one.

An account's shard is SHA-256 of its 12-digit ID, modulo N: the same on every machine, every
Python and every run (Python's ``hash()`` of a string changes with each process), and spread
evenly whatever the IDs look like. The shard's collect records itself in its run's notes
(:func:`shard_note`), so ``merge`` can tell whether every shard of the set is there and a
merged snapshot can date each account's findings by its own shard's run.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from .errors import UserError

# ASCII digits only: '١/٣' is no shard (\d would take any script's digits).
_SHARD = re.compile(r"([0-9]+)/([0-9]+)", re.ASCII)
# The start of the note a shard's run carries in bedrock_sql_runs.notes.
_NOTE = re.compile(r"shard ([0-9]+)/([0-9]+):", re.ASCII)


def shard_of(account_id: str, count: int) -> int:
    """The shard (0 <= shard < count) of ``account_id``: SHA-256 of the ID, modulo ``count``."""
    digest = hashlib.sha256(account_id.encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def holds(self, account_id: str) -> bool:
        return shard_of(account_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"I/N"`` (0 <= I < N) as a :class:`Shard`; anything else is a :class:`UserError`."""
    match = _SHARD.fullmatch(text.strip())
    if not match:
        raise UserError(f"--shard {text!r}: give I/N, the shard's index and the number of shards (e.g. 0/4)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise UserError(f"--shard {text}: the number of shards must be at least 1")
    if index >= count:
        raise UserError(f"--shard {text}: the index must be from 0 to {count - 1}")
    return Shard(index, count)


def shard_note(shard: Shard, held: int, named: int) -> str:
    """The run note a shard's collect writes (``merge`` reads it back, :func:`note_shard`)."""
    return (
        f"shard {shard}: this snapshot holds the {held} of {named} account(s) whose SHA-256 of the account ID, "
        f"modulo {shard.count}, is {shard.index}; merge the {shard.count} shards with bedrock-sql merge"
    )


def json_list(text: object) -> list:
    """A run's JSON array column (``accounts``, ``notes``) as a list; [] when it holds none."""
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested past Python's stack
        return []
    return value if isinstance(value, list) else []


def note_shard(notes: list[str]) -> Shard | None:
    """The shard a run's notes say it collected, or None (a collect without --shard, or a
    note no collect writes: an index not below its count)."""
    for note in notes:
        match = _NOTE.match(note) if isinstance(note, str) else None
        if match:
            index, count = int(match.group(1)), int(match.group(2))
            return Shard(index, count) if 0 <= index < count else None
    return None
