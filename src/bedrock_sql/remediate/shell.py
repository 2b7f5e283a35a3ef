"""Everything the remediation script hands to bash goes through here.

Resource data is written by whoever can create a resource in one member account, and the
script is run by an auditor with administrator credentials. So the script is generated from
parts, never concatenated from data: a value becomes one shell word with :func:`quote` (or
:func:`word`, which joins literal text and the script's own variables into one word), a line
of prose becomes comment lines with :func:`comment`, text the script prints is a ``printf`` of
quoted lines (:func:`printf_lines`) -- there is no heredoc whose delimiter data could contain.

:func:`quote` is exact: bash turns its result back into the very same string, for any string
bash can hold. Three forms, the first that fits:

- a word of letters, digits and ``@%+=:,./_-`` only (shlex's safe set) stays bare;
- text without control characters is single-quoted (``'it'\\''s'``): nothing inside single
  quotes is special to bash -- ``$``, backticks, ``"``, ``\\``, ``!`` are all literal;
- text with control characters (newline, ESC, tab, DEL, C1, Unicode format characters such as
  bidi overrides) is ANSI-C quoted with every byte that is not printable ASCII written as
  ``\\xHH`` (``$'legacy\\x0atouch pwned #'``). The result is printable ASCII on one line: it
  cannot end a comment or a line, it shows a reviewer what is really there, and its meaning
  does not depend on the locale bash runs in (no multi-byte character of a legacy locale can
  swallow a backslash, as GBK's trail bytes could).

bash cannot hold a NUL character in any word or variable, and a lone surrogate has no UTF-8
form: such a string is refused (:class:`NotRepresentable`), never silently changed. The planner
refuses them earlier, turning the step into a manual one (:mod:`.validate`).

:func:`comment` folds the same characters into visible escapes (``\\n``, ``\\x1b``,
``\\u202e``) so no data can end a comment, reorder the text a reviewer reads, or reach their
terminal raw. Backslashes are kept as they are, so a command quoted by :func:`quote` and shown
in a comment can still be pasted as it is.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

#: A shell variable name: the script's own (``HERE``, ``KEY_ARN_...``, ``JOB_STATE_1``).
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# shlex's set of characters that need no quoting in an argument.
_BARE = re.compile(r"[A-Za-z0-9@%+=:,./_-]+", re.ASCII)
# Unicode categories that are not shown as themselves: control (C0, DEL, C1), format (bidi
# overrides, zero-width characters), line and paragraph separators, surrogates.
_HIDDEN = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


class NotRepresentable(ValueError):
    """A string no bash word can hold exactly (a NUL character, a lone surrogate)."""


def _hidden(char: str) -> bool:
    return unicodedata.category(char) in _HIDDEN


def representable_problem(value: str) -> str | None:
    """Why bash cannot hold ``value`` exactly, or None when it can."""
    if "\x00" in value:
        return "it holds a NUL character, which no shell word can carry"
    if any(unicodedata.category(c) == "Cs" for c in value):
        return "it holds a lone surrogate, which has no UTF-8 form"
    return None


def quote(value: str) -> str:
    """``value`` as one bash word that bash turns back into exactly ``value``."""
    if not isinstance(value, str):
        raise TypeError(f"quote() takes a str, not {type(value).__name__}: render other values first")
    problem = representable_problem(value)
    if problem:
        raise NotRepresentable(problem)
    if _BARE.fullmatch(value):
        return value
    if not any(_hidden(c) for c in value):
        return "'" + value.replace("'", "'\\''") + "'"
    return "$'" + "".join(_ansi_c(c) for c in value) + "'"


def _ansi_c(char: str) -> str:
    if char in ("\\", "'"):
        return "\\" + char
    if " " <= char <= "~":
        return char
    return "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8"))


@dataclass(frozen=True)
class Expand:
    """The value of one of the script's own variables inside a word: ``"$NAME"``."""

    name: str

    def __post_init__(self) -> None:
        if not IDENTIFIER.fullmatch(self.name):
            raise ValueError(f"not a shell variable name: {self.name!r}")

    def __str__(self) -> str:
        return f'"${self.name}"'


def name(value: str) -> str:
    """A variable name the script assigns (``NAME=...``): checked, returned as it is."""
    return Expand(value).name


def word(*parts: str | Expand) -> str:
    """One word of literal text and variables: ``word("Created key ", Expand("K"))`` is
    ``'Created key '"$K"``."""
    rendered = [str(p) if isinstance(p, Expand) else quote(p) for p in parts if p != ""]
    return "".join(rendered) or "''"


def command(*args: str | Expand) -> str:
    """A command line: each argument one word."""
    return " ".join(word(a) for a in args)


def substitution(argv: Sequence[str]) -> str:
    """``"$(ARGV...)"``: the output of a command (every argument quoted) as one word."""
    return '"$(' + " ".join(quote(a) for a in argv) + ')"'


def visible(text: str) -> str:
    """``text`` with every control, format and separator character as a visible escape."""
    return "".join(_visible(c) for c in str(text))


def _visible(char: str) -> str:
    if not _hidden(char):
        return char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    point = ord(char)
    if point < 0x100:
        return f"\\x{point:02x}"
    return f"\\u{point:04x}" if point < 0x10000 else f"\\U{point:08x}"


def comment(text: str, indent: str = "", width: int = 96) -> list[str]:
    """``text`` as bash comment lines (``INDENT# ...``), wrapped; no data can end a comment."""
    lines = textwrap.wrap(visible(text), max(20, width - len(indent)), break_on_hyphens=False, break_long_words=False)
    return [f"{indent}# {line}" for line in lines] or [f"{indent}#"]


def comment_line(text: str, indent: str = "") -> str:
    """``text`` as one comment line, not wrapped (a command shown for a human to run)."""
    return f"{indent}# {visible(text)}"


def printf_lines(lines: Iterable[str], indent: str = "") -> list[str]:
    """A ``printf`` that prints ``lines`` (made visible: no escape sequence reaches the
    terminal), one quoted argument a line -- what a heredoc did, with nothing to end it early."""
    quoted = [quote(visible(line)) for line in lines]
    if not quoted:
        return []
    return [f"{indent}printf '%s\\n' \\", *(f"{indent}  {q} \\" for q in quoted[:-1]), f"{indent}  {quoted[-1]}"]
