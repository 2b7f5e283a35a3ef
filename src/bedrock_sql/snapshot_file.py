"""Which files collect may replace: only bedrock-sql snapshots (or nothing at all).

Every snapshot collect writes carries ``PRAGMA application_id = APPLICATION_ID`` (SQLite's
header field for "which application's file is this", see :func:`mark_as_snapshot`).
Snapshots written before that field was set are recognised by their ``bedrock_sql_runs``
table. The existing file is only ever read, byte by byte or through an immutable read-only
SQLite connection, so checking it never creates a -journal or -wal file beside it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import apsw

from .errors import UserError

# "BDSQ": not in SQLite's list of registered application ids (magic.txt).
APPLICATION_ID = 0x42445351

# How bedrock-sql opens the partial file it just made exclusively: existing (no CREATE), and
# refused when the name has become a symlink (SQLite would write an empty file it points to).
# SQLite's NOFOLLOW refuses a symlink anywhere in the path: open own_file(path), not path.
WRITE_OWN_FILE = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_NOFOLLOW


def own_file(path: Path) -> str:
    """``path`` with its folders' symlinks resolved (``/tmp`` is one on macOS, a home folder
    may be one), its last part as it is: what WRITE_OWN_FILE opens."""
    return os.path.join(os.path.realpath(path.parent), path.name)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_SIZE = 100


def not_a_snapshot(path: str | os.PathLike) -> str | None:
    """Why ``path`` must not be replaced by a snapshot, or None when it may be.

    It may be when it does not exist, is empty, or is a whole bedrock-sql snapshot.
    """
    path = Path(path)
    if not os.path.lexists(path):
        return None
    if path.is_dir():
        return "a directory"
    if not path.is_file():
        return "not a regular file"
    try:
        size = path.stat().st_size
        if size == 0:
            return None  # an empty file holds nothing to lose (e.g. made by `touch` or mktemp)
        with open(path, "rb") as handle:
            header = handle.read(_HEADER_SIZE)
    except OSError as exc:
        return f"a file bedrock-sql cannot read ({exc.strerror})"
    if len(header) < _HEADER_SIZE or not header.startswith(_SQLITE_MAGIC):
        return "not a SQLite database"
    expected = _size_in_header(header)
    if expected is not None and size < expected:
        return f"a truncated SQLite database ({size} of {expected} bytes)"
    application_id = int.from_bytes(header[68:72], "big")
    if application_id not in (0, APPLICATION_ID):
        return f"a SQLite database of another application (application_id {application_id:#010x})"
    problem = _runs_table_problem(path)
    if problem:
        return f"a SQLite database that bedrock-sql did not write ({problem})"
    return None


def check_replaceable(path: str | os.PathLike, *, force: bool = False) -> None:
    """Raise :class:`UserError` unless collect may write a snapshot over ``path``.

    ``force`` allows replacing any file, never a directory.
    """
    reason = not_a_snapshot(path)
    if reason is None or (force and not Path(path).is_dir()):
        return
    advice = "" if reason == "a directory" else f"; to replace it anyway: bedrock-sql --db {path} collect --force"
    raise UserError(f"refusing to replace {path}: not a bedrock-sql snapshot ({reason}){advice}")


def mark_as_snapshot(partial: Path) -> None:
    """Stamp the (still empty) file a collect writes into with bedrock-sql's application id.

    Opened as it was made, never created again and never through a symlink: one put in its
    place since (by whoever can write the folder) is refused, not written through.
    """
    connection = apsw.Connection(own_file(partial), flags=WRITE_OWN_FILE)
    try:
        # No journal beside the partial file: it is thrown away if anything fails. Each
        # statement on its own and fetched: apsw runs the next statement of a script only
        # once the rows of the one before (journal_mode answers one) have been read.
        connection.execute("PRAGMA journal_mode=OFF").fetchall()
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}").fetchall()
    finally:
        connection.close()


def _size_in_header(header: bytes) -> int | None:
    """The file size the header promises (page size x page count), when that count is valid.

    The count is valid when "version-valid-for" equals the change counter (SQLite >= 3.7.0
    keeps them equal; older writers leave it stale, and then nothing is claimed).
    """
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    page_count = int.from_bytes(header[28:32], "big")
    if header[24:28] != header[92:96] or page_count == 0:
        return None
    return page_size * page_count


def _runs_table_problem(path: Path) -> str | None:
    """None if ``path``'s bedrock_sql_runs table reads whole; else what SQLite said."""
    from .snapshot import RUNS_TABLE  # here: snapshot imports this module

    # immutable=1: SQLite takes no lock and never looks for (or creates) a journal or WAL.
    uri = f"file:{quote(str(path.absolute()))}?mode=ro&immutable=1"
    try:
        connection = apsw.Connection(uri, flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
    except apsw.Error as exc:
        return str(exc)
    try:
        connection.execute(f"SELECT count(*) FROM {RUNS_TABLE}").fetchall()
    except apsw.Error as exc:
        return str(exc)
    finally:
        connection.close()
    return None
