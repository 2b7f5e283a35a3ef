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

Files written as a stream rather than from one text -- snapshots (collect, merge,
:func:`bedrock_sql.snapshot.open_partial`) and ``check --export`` files
(:func:`bedrock_sql.report.export_files`) -- are made the same way: a new ``mkstemp`` file
beside the target, renamed over it once complete.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import UserError

# Errors of link() on a file system without hard links (some network and FUSE mounts, FAT).
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP}


def private_directory(path: str | os.PathLike, *, what: str) -> Path:
    """``path`` as a folder only its owner (the user running bedrock-sql) can change.

    Missing folders are created, the last one 0700 (its parents with the umask, as ``mkdir
    -p`` does). An existing one must be a directory owned by the effective user and not
    writable by group or others; a symlink to such a folder is accepted when the link is the
    user's too. ``what`` names it in the one-line refusal (``--out-dir PATH``).
    """
    folder = Path(path)
    if not os.path.lexists(folder):
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a parent is a file, or cannot be created
            raise UserError(f"{what}: cannot create {folder.parent}: {exc.strerror}") from None
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass  # created meanwhile (by whom?): judged below as any existing folder
        except OSError as exc:
            raise UserError(f"{what}: {exc.strerror}") from None
        else:
            _make_private(folder, what)
            return folder
    try:
        link = os.lstat(folder)
        info = os.stat(folder)
    except OSError as exc:
        raise UserError(f"{what}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"{what}: not a directory")
    me = os.geteuid()
    if stat.S_ISLNK(link.st_mode) and link.st_uid != me:
        raise UserError(f"{what}: a symlink owned by user {link.st_uid}, not by you: choose a folder of your own")
    _judge(info, what)
    return folder


def _judge(info: os.stat_result, what: str) -> None:
    """Refuse a folder that is not the user's own, or that others may write into."""
    if info.st_uid != os.geteuid():
        raise UserError(f"{what}: owned by user {info.st_uid}, not by you: choose a folder of your own")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(
            f"{what}: others can write into it (mode {stat.S_IMODE(info.st_mode):04o}), so they could swap a file "
            "before you read or run it: chmod go-w it, or choose a folder of your own"
        )


def _make_private(folder: Path, what: str) -> None:
    """Set the folder just made to 0700: mkdir's mode is masked by the umask (0500 under umask
    0277). Through a descriptor opened without following a link, so a symlink swapped in
    meanwhile (the parent may be others' to write) is refused, never chmod-ed through."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise UserError(f"{what}: {exc.strerror}") from None
    try:
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            raise UserError(f"{what}: owned by user {owner}, not by you: choose a folder of your own")
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def write_file(path: str | os.PathLike, text: str, *, mode: int = 0o600, replace: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` with permissions ``mode``, never through a planted name.

    Without ``replace`` an existing ``path`` (a file, a symlink, anything) is an error
    (:class:`FileExistsError`), also one that appears while we write; with it, ``path`` is
    replaced by rename (a symlink there is replaced, its target untouched). The file is
    complete or absent: a failure half-way leaves no partial file behind.
    """
    target = Path(path)
    if not replace and os.path.lexists(target):
        raise _exists(target)
    # The name is cut so that prefix, mkstemp's 8 random characters and suffix fit in NAME_MAX (255).
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            os.fchmod(handle.fileno(), mode)  # exactly mode, whatever the umask
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, target)
        else:
            _link_new(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _exists(target: Path) -> FileExistsError:
    """The error for a taken name, with ``strerror`` and ``filename`` for a one-line message."""
    return FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))


def _link_new(temporary: str, target: Path) -> None:
    """Give the complete ``temporary`` file the name ``target``, which must not exist.

    link() fails with EEXIST if the name was taken since we looked (a file, a dangling
    symlink): no-clobber, atomically, where rename would replace. Where the file system has no
    hard links, the file is copied into a new ``target`` made with O_EXCL | O_NOFOLLOW
    instead: still never replacing or following anything, though a reader could see it
    half-written for a moment.
    """
    try:
        try:
            os.link(temporary, target)
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            _copy_new(temporary, target)
    except FileExistsError:
        raise _exists(target) from None  # link() names the temporary file first: name the target
    os.unlink(temporary)


def _copy_new(temporary: str, target: Path) -> None:
    mode = stat.S_IMODE(os.stat(temporary).st_mode)
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(out, "wb") as sink, open(temporary, "rb") as source:
            os.fchmod(sink.fileno(), mode)
            shutil.copyfileobj(source, sink)
            sink.flush()
            os.fsync(sink.fileno())
    except BaseException:
        target.unlink(missing_ok=True)  # ours: made with O_EXCL just now
        raise
