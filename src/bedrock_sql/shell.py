"""``bedrock-sql shell``: apsw's interactive shell on the snapshot, read-only.

The connection is the snapshot's (:func:`bedrock_sql.sql.snapshot_connection`): opened
read-only, with an authorizer that refuses any SQL but reading (ATTACH, VACUUM INTO, writing
PRAGMAs...) and the resource limits of every ad-hoc statement. apsw's *dot-commands* are
Python, though, and many of them write, open, load or run something whatever the connection
allows: ``.shell`` runs a program, ``.py`` Python, ``.output``/``.backup``/``.pages-svg``
write files, ``.open`` and ``.connection`` reach another (writable) connection, ``.load``
loads native code, ``.dbconfig``/``.limit`` loosen the connection's guards.

:data:`COMMANDS` therefore judges each of apsw's commands: allowed (it only reads the database
or changes how the shell shows things), allowed only without arguments (it shows a setting
with none and changes it with some), or refused with the reason. The shell class is built by
walking apsw's ``command_*`` methods, so a command that apsw adds later and this table does
not know is refused, not inherited; ``tests/test_shell.py`` fails until it is judged.
A refused command says so in one line and does nothing; the shell goes on.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import apsw
import apsw.shell

from .render import terminal_text

PREFIX = "command_"

# What may reach the terminal from the shell besides printable text: its own line breaks and
# the tab of .mode tabs. Every other C0/C1 control, DEL and the bidi controls (which reorder
# what a reader sees) is written as a visible escape, whatever mode or command produced it
# (.mode insert/python/json and .dump format values themselves, not through _fmt_text_col).
_INERT = str.maketrans(
    {
        c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"
        for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0x200B, 0x2010),
                  *range(0x2028, 0x202F), *range(0x2066, 0x206A), 0xFEFF]
    }
)


@dataclass(frozen=True)
class Rule:
    """How the read-only shell treats one apsw command."""

    allowed: bool
    reason: str = ""  # why it is refused (with arguments only, when bare_only)
    bare_only: bool = False  # allowed without arguments (shows), refused with them (sets)


READS = Rule(True)


def refused(reason: str) -> Rule:
    return Rule(False, reason)


def bare_only(reason: str) -> Rule:
    return Rule(True, reason, bare_only=True)


# apsw's command name (its method's name without ``command_``; ``.pages-svg`` is
# ``pages_svg``) -> rule. Judged against apsw 3.54's shell.
COMMANDS: dict[str, Rule] = {
    # Reading the database.
    "databases": READS,
    "dbinfo": READS,
    "dump": READS,  # SQL text on stdout; its BEGIN/END are transactions, which only read here
    "find": READS,
    "ftsq": READS,
    "indices": READS,
    "pages": READS,
    "parameter": READS,  # values are SQL evaluated on the read-only connection
    "schema": READS,
    "tables": READS,
    # How the shell shows things, and leaving it.
    "bail": READS,
    "changes": READS,
    "color": READS,
    "colour": READS,
    "echo": READS,
    "encoding": READS,  # the encoding of files opened by .output/.import, both refused
    "exceptions": READS,
    "exit": READS,
    "header": READS,
    "headers": READS,
    "help": READS,
    "mode": READS,  # every mode prints to the shell's own output
    "nullvalue": READS,
    "print": READS,
    "prompt": READS,
    "quit": READS,
    "separator": READS,
    "show": READS,
    "timeout": READS,  # how long to wait for a lock
    "timer": READS,
    "version": READS,
    "vfsinfo": READS,
    "vfslist": READS,
    "vfsname": READS,
    "width": READS,
    # Shows a setting without arguments; changes it with them.
    "connection": bare_only("switches to another connection of this process, which is not read-only"),
    "dbconfig": bare_only("changes the connection's configuration (extension loading, defensive mode...)"),
    "limit": bare_only("raises the limits that keep one statement from taking the machine"),
    # Writes, opens, loads or runs something.
    "autoimport": refused("creates a table from a file"),
    "backup": refused("writes a copy of the snapshot to a file"),
    "cd": refused("changes the working directory, which no command here needs"),
    "close": refused("closes the snapshot (use .quit to leave)"),
    "import": refused("writes a file's rows into a table"),
    "load": refused("loads a native extension, which runs its code"),
    "log": refused("replaces SQLite's process-wide log handler"),
    "open": refused("opens another database, writable (and --wipe deletes files)"),
    "output": refused("writes the output to a file (redirect the shell's output instead)"),
    "pages_svg": refused("writes an SVG file and opens a browser"),
    "py": refused("runs Python"),
    "read": refused("runs the commands (or, for .py, the Python) of a file: pipe it in instead, bedrock-sql shell < FILE"),
    "restore": refused("overwrites a database from a file"),
    "shell": refused("runs a system command"),
}

UNKNOWN = refused("is not known to be read-only (a command of a newer apsw than bedrock-sql has judged)")


def apsw_commands(shell_class: type = apsw.shell.Shell) -> list[str]:
    """The names of every dot-command of ``shell_class`` (its ``command_*`` attributes)."""
    return sorted(name[len(PREFIX):] for name in dir(shell_class) if name.startswith(PREFIX))


def rule_of(name: str) -> Rule:
    return COMMANDS.get(name, UNKNOWN)


class _Refused(Exception):
    """A refused command under ``.bail on``: already reported, so apsw's handler stays quiet."""

    _handle_exception_saw_this = True


def _refuse(shell: apsw.shell.Shell, name: str, reason: str) -> None:
    where = "" if shell.interactive else f"line {shell.input_line_number}: "
    command = "." + name.replace("_", "-")
    shell.write_error(f"{where}{command} is refused: bedrock-sql shell is read-only and {command} {reason}\n")
    if shell.bail:
        raise _Refused(command)


def _refusing(name: str, rule: Rule, original):
    @functools.wraps(original)
    def command(self, cmd):
        if rule.bare_only and not cmd:
            return original(self, cmd)
        _refuse(self, name, rule.reason)

    usage = (original.__doc__ or f"{name}: ").strip().split("\n", 1)[0].split(":", 1)[0]
    condition = "with arguments " if rule.bare_only else ""
    # .help reads "usage: description" from the first line of the docstring.
    command.__doc__ = f"{usage}: (refused {condition}here: it {rule.reason})"
    return command


def _fmt_text_col(self, value):
    """A value in the text modes (column, list, line, csv...): one line, escaped as every
    table of bedrock-sql shows it (a newline in data cannot forge a row)."""
    if isinstance(value, str):
        return terminal_text(value)
    return apsw.shell.Shell._fmt_text_col(self, value)


class _InertStream:
    """A text stream whose every write is inert on a terminal: resource data reaches it through
    modes and commands that format values themselves (.mode box writes to stdout directly), so
    the last word is the stream's. Everything else (isatty, fileno, flush) is the stream's own."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(text.translate(_INERT))

    def __getattr__(self, name):
        return getattr(self._stream, name)


def read_only_shell_class(base: type = apsw.shell.Shell) -> type:
    """A subclass of ``base`` whose every command that :data:`COMMANDS` does not allow is
    replaced by one that refuses it. Walks ``base`` itself, so an unjudged command is refused.
    Its output is inert on a terminal; colours are off (they would be escape sequences)."""
    namespace = {
        "__doc__": "apsw's shell with only the commands that read (see bedrock_sql.shell).",
        "_fmt_text_col": _fmt_text_col,
    }
    for name in apsw_commands(base):
        rule = rule_of(name)
        if not rule.allowed or rule.bare_only:
            namespace[PREFIX + name] = _refusing(name, rule, getattr(base, PREFIX + name))
    return type("ReadOnlyShell", (base,), namespace)


ReadOnlyShell = read_only_shell_class()


def run_shell(connection: apsw.Connection, intro: str, **streams) -> int:
    """apsw's shell on ``connection`` until EOF or ``.quit``; the exit code (``.exit N``
    raises SystemExit as in apsw). ``streams``: ``stdin``, ``stdout``, ``stderr``."""
    for name, default in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        streams[name] = _InertStream(streams.get(name) or default)
    shell = ReadOnlyShell(db=connection, **streams)
    shell.colour_scheme = "off"  # its colours are escape sequences, which _write shows as text
    try:
        shell.cmdloop(intro=intro)
    except Exception:  # noqa: BLE001 -- only under .bail on, after the shell has said why
        return 2
    return 0
