"""Writing files beside the user's data without following what someone else planted there.

Another local user (or a process of the audited estate's owner on a shared jump host) can
create a name before bedrock-sql writes it: a symlink at ``bedrock-cmk-remediation.sh``
pointing at ``~/.bashrc``, a directory that others may write into, a file taking the name of
a partial snapshot. Every file bedrock-sql writes for the user therefore goes through here:

- :func:`private_directory` checks (or creates, 0700) the folder: owned by the user, writable
  by nobody else, so no one can swap a file in it between our writing and the user's reading;
- :func:`write_file` writes into a new temporary file of that folder (``mkstemp``: exclusive
  creation, so a planted name is never opened, let alone followed), then moves it into place
  with ``rename``, which replaces a planted symlink itself rather than its target. Without
  ``replace`` the move is ``link`` (fails if the name exists, atomically), so an existing file
  is never overwritten, even one created a moment after we looked.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import UserError


def private_directory(path: str | os.PathLike, *, what: str) -> Path:
    """``path`` as a folder only its owner (the user running bedrock-sql) can change.

    Missing folders are created, the last one 0700 (its parents with the umask, as ``mkdir
    -p`` does). An existing one must be a directory owned by the effective user and not
    writable by group or others; a symlink to such a folder is accepted when the link is the
    user's too. ``what`` names it in the one-line refusal (``--out-dir PATH``).
    """
    folder = Path(path)
    try:
        if not os.path.lexists(folder):
            folder.parent.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700)
            os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
            return folder
        link = os.lstat(folder)
        info = os.stat(folder)
    except FileExistsError:
        return private_directory(path, what=what)  # created meanwhile: judge what is there
    except OSError as exc:
        raise UserError(f"{what}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what}: not a directory")
    me = os.geteuid()
    if stat.S_ISLNK(link.st_mode) and link.st_uid != me:
        raise UserError(f"{what}: a symlink owned by user {link.st_uid}, not by you: choose a folder of your own")
    if info.st_uid != me:
        raise UserError(f"{what}: owned by user {info.st_uid}, not by you: choose a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(
            f"{what}: others can write into it (mode {stat.S_IMODE(info.st_mode):04o}), so they could swap a file "
            "before you read or run it: chmod go-w it, or choose a folder of your own"
        )
    return folder


def write_file(path: str | os.PathLike, text: str, *, mode: int = 0o600, replace: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` with permissions ``mode``, never through a planted name.

    Without ``replace`` an existing ``path`` (a file, a symlink, anything) is an error, also one
    that appears while we write; with it, ``path`` is replaced by rename (a symlink there is
    replaced, its target untouched). The file is complete or absent: a failure half-way leaves
    no partial file behind.
    """
    target = Path(path)
    if not replace and os.path.lexists(target):
        raise FileExistsError(target)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, target)
        else:
            os.link(temporary, target)  # no-clobber: fails with EEXIST if the name was taken meanwhile
            os.unlink(temporary)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
