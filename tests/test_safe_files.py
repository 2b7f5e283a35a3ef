"""Files written beside the user's data (:mod:`bedrock_sql.safe_files`): never through a name
someone else planted, never half-written, only into folders nobody else can change.

The attacker here is another local user of the same machine (a shared jump host): they can
create names in a folder they may write to, and own files and folders of their own. Tests
that make a file of another user chown it, which takes root; they skip otherwise.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from bedrock_sql import safe_files
from bedrock_sql.errors import UserError
from bedrock_sql.safe_files import private_directory, write_file

OTHER_UID = 4242  # a user that is not us (chown as root)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making another user's file takes root (os.chown)")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the attacker wants overwritten (say, ~/.bashrc), outside the output folder."""
    path = tmp_path / "victim"
    path.mkdir()
    path = path / ".bashrc"
    path.write_text("the user's own\n")
    path.chmod(0o644)
    return path


@pytest.fixture
def out(tmp_path: Path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir(mode=0o700)
    return folder


# --- write_file -------------------------------------------------------------------------------


def test_writes_a_new_file_with_the_mode_whatever_the_umask(out: Path) -> None:
    old = os.umask(0)  # a umask of 0 would leave 0666 to open()
    try:
        write_file(out / "plan.sh", "#!/bin/bash\n", mode=0o700)
        write_file(out / "policy.json", "{}\n")
    finally:
        os.umask(old)
    assert (out / "plan.sh").read_text() == "#!/bin/bash\n" and mode(out / "plan.sh") == 0o700
    assert (out / "policy.json").read_text() == "{}\n" and mode(out / "policy.json") == 0o600
    assert names(out) == ["plan.sh", "policy.json"]  # no temporary left


def test_text_is_written_as_given(out: Path) -> None:
    text = "line\r\nnext\nünïcode ✓\n"
    write_file(out / "f.txt", text)
    assert (out / "f.txt").read_bytes() == text.encode("utf-8")  # no newline translation


def test_replace_renames_over_a_planted_symlink_and_leaves_its_target(out: Path, victim: Path) -> None:
    planted = out / "bedrock-cmk-remediation.sh"
    planted.symlink_to(victim)
    write_file(planted, "echo plan\n", mode=0o700, replace=True)
    assert victim.read_text() == "the user's own\n" and mode(victim) == 0o644
    assert not planted.is_symlink() and planted.read_text() == "echo plan\n" and mode(planted) == 0o700
    assert names(out) == ["bedrock-cmk-remediation.sh"]


def test_replace_replaces_a_regular_file_with_the_new_mode(out: Path) -> None:
    old = out / "plan.sh"
    old.write_text("old\n")
    old.chmod(0o777)  # the new file's mode is ours, not the old file's
    write_file(old, "new\n", mode=0o700, replace=True)
    assert old.read_text() == "new\n" and mode(old) == 0o700


@pytest.mark.parametrize("kind", ["file", "symlink", "dangling-symlink", "directory"])
def test_without_replace_an_existing_name_is_an_error(out: Path, victim: Path, kind: str) -> None:
    path = out / "plan.sh"
    if kind == "file":
        path.write_text("kept\n")
    elif kind == "symlink":
        path.symlink_to(victim)
    elif kind == "dangling-symlink":
        path.symlink_to(out / "nowhere")  # exists() says False: lexists() must be asked
    else:
        path.mkdir()
    with pytest.raises(FileExistsError) as exists:
        write_file(path, "new\n")
    assert exists.value.strerror == os.strerror(17) and exists.value.filename == str(path)  # for a one-line message
    assert victim.read_text() == "the user's own\n"
    assert not (out / "nowhere").exists()
    if kind == "file":
        assert path.read_text() == "kept\n"
    assert names(out) == ["plan.sh"]


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_a_name_taken_after_the_check_is_not_clobbered(out: Path, victim: Path, monkeypatch, planted: str) -> None:
    """The race: the name is free when looked at, taken before the file is moved there."""
    path = out / "plan.sh"
    real_mkstemp = tempfile.mkstemp

    def mkstemp_then_plant(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        if planted == "file":
            path.write_text("theirs\n")
        else:
            path.symlink_to(victim)
        return made

    monkeypatch.setattr(safe_files.tempfile, "mkstemp", mkstemp_then_plant)
    with pytest.raises(FileExistsError) as exists:
        write_file(path, "ours\n")
    assert exists.value.filename == str(path)  # the name taken, not our temporary file's
    assert victim.read_text() == "the user's own\n"
    assert (path.read_text() == "theirs\n") if planted == "file" else (os.readlink(path) == str(victim))
    assert names(out) == ["plan.sh"]  # and our temporary file is gone


def test_a_write_error_leaves_no_partial_file(out: Path, monkeypatch) -> None:
    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safe_files.os, "fsync", disk_full)
    for replace in (False, True):
        with pytest.raises(OSError, match="No space left"):
            write_file(out / "plan.sh", "x" * 100_000, replace=replace)
        assert names(out) == []


def test_an_interrupt_while_writing_leaves_no_partial_file(out: Path, monkeypatch) -> None:
    (out / "plan.sh").write_text("previous\n")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(safe_files.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_file(out / "plan.sh", "new\n", replace=True)
    assert names(out) == ["plan.sh"] and (out / "plan.sh").read_text() == "previous\n"


def test_without_hard_links_the_file_is_still_made_exclusively(out: Path, victim: Path, monkeypatch) -> None:
    """Some file systems (FAT, some network mounts) refuse link(): the new name is then made
    with O_EXCL | O_NOFOLLOW, which fails on a planted name just the same."""
    def no_links(source, target):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(safe_files.os, "link", no_links)
    write_file(out / "plan.sh", "echo plan\n", mode=0o700)
    assert (out / "plan.sh").read_text() == "echo plan\n" and mode(out / "plan.sh") == 0o700
    (out / "policy.json").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_file(out / "policy.json", "{}\n")
    real_lexists = os.path.lexists
    monkeypatch.setattr(safe_files.os.path, "lexists", lambda p: False if Path(p).name == "policy.json" else real_lexists(p))
    with pytest.raises(FileExistsError) as exists:  # planted after the check: O_EXCL still refuses it
        write_file(out / "policy.json", "{}\n")
    assert exists.value.filename == str(out / "policy.json")
    assert victim.read_text() == "the user's own\n"
    assert names(out) == ["plan.sh", "policy.json"]


def test_a_long_name_still_gets_a_temporary_file(out: Path) -> None:
    name = "p" * 250  # NAME_MAX is 255: ".NAME." + 8 random + ".partial" would not fit
    write_file(out / name, "x\n")
    assert names(out) == [name]


# --- private_directory -------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0, 0o022, 0o277])
def test_a_missing_folder_is_created_0700_whatever_the_umask(tmp_path: Path, umask: int, monkeypatch) -> None:
    folder = tmp_path / "a" / "b" / "plans"
    made_with = []
    real_make_private = safe_files._make_private

    def seen_before_chmod(path, what):
        made_with.append(mode(path))  # never open to others, not even before the chmod
        return real_make_private(path, what)

    monkeypatch.setattr(safe_files, "_make_private", seen_before_chmod)
    old = os.umask(umask)
    try:
        assert private_directory(folder, what="--out-dir x") == folder
    finally:
        os.umask(old)
    assert folder.is_dir() and mode(folder) == 0o700
    assert made_with == [0o700 & ~umask]
    write_file(folder / "plan.sh", "x\n")  # and it is usable (0500 under umask 0277 would not be)


def test_an_existing_private_folder_is_accepted(out: Path) -> None:
    assert private_directory(out, what="--out-dir out") == out
    out.chmod(0o755)  # others may read, not write: accepted (what it holds is 0600 anyway)
    assert private_directory(out, what="--out-dir out") == out


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o707, 0o1777])
def test_a_folder_others_can_write_is_refused(out: Path, bits: int) -> None:
    out.chmod(bits)
    with pytest.raises(UserError) as refused:
        private_directory(out, what=f"--out-dir {out}")
    assert str(refused.value) == (
        f"--out-dir {out}: others can write into it (mode {bits:04o}), so they could swap a file before you "
        "read or run it: chmod go-w it, or choose a folder of your own"
    )
    assert mode(out) == bits  # judged, not changed


@as_root
def test_a_folder_of_another_user_is_refused(out: Path) -> None:
    os.chown(out, OTHER_UID, -1)
    with pytest.raises(UserError, match=f"^--out-dir out: owned by user {OTHER_UID}, not by you"):
        private_directory(out, what="--out-dir out")


def test_a_symlink_of_ours_to_a_private_folder_is_accepted(tmp_path: Path, out: Path) -> None:
    link = tmp_path / "plans"
    link.symlink_to(out)
    assert private_directory(link, what="--out-dir plans") == link


def test_a_symlink_to_a_folder_others_can_write_is_refused(tmp_path: Path, out: Path) -> None:
    out.chmod(0o777)
    link = tmp_path / "plans"
    link.symlink_to(out)
    with pytest.raises(UserError, match="others can write into it"):
        private_directory(link, what="--out-dir plans")


@as_root
def test_a_symlink_of_another_user_is_refused(tmp_path: Path, out: Path) -> None:
    link = tmp_path / "plans"
    link.symlink_to(out)
    os.lchown(link, OTHER_UID, -1)
    with pytest.raises(UserError, match=f"^--out-dir plans: a symlink owned by user {OTHER_UID}, not by you"):
        private_directory(link, what="--out-dir plans")


@as_root
def test_a_symlink_of_ours_to_another_users_folder_is_refused(tmp_path: Path, out: Path) -> None:
    os.chown(out, OTHER_UID, -1)
    link = tmp_path / "plans"
    link.symlink_to(out)
    with pytest.raises(UserError, match=f"owned by user {OTHER_UID}, not by you"):
        private_directory(link, what="--out-dir plans")


@pytest.mark.parametrize("kind", ["file", "dangling-symlink"])
def test_what_is_no_folder_is_refused(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "plans"
    if kind == "file":
        path.write_text("x")
        expected = "^--out-dir plans: not a directory$"
    else:
        path.symlink_to(tmp_path / "nowhere")
        expected = "^--out-dir plans: No such file or directory$"
    with pytest.raises(UserError, match=expected):
        private_directory(path, what="--out-dir plans")
    assert not (tmp_path / "nowhere").exists()


def test_a_parent_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    """It recursed without end (RecursionError) before."""
    (tmp_path / "notes").write_text("x")
    with pytest.raises(UserError, match=f"^--out-dir notes/plans: cannot create {tmp_path / 'notes'}: File exists$"):
        private_directory(tmp_path / "notes" / "plans", what="--out-dir notes/plans")


def test_a_folder_made_by_someone_else_meanwhile_is_judged(tmp_path: Path, monkeypatch) -> None:
    """Created between our look and our mkdir (by another user, with their mode): not taken as
    ours, judged like any existing folder."""
    folder = tmp_path / "plans"
    real_mkdir = Path.mkdir

    def planted_first(self, mode=0o777, parents=False, exist_ok=False):
        if self == folder:
            real_mkdir(self)
            os.chmod(self, 0o777)
        return real_mkdir(self, mode, parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", planted_first)
    with pytest.raises(UserError, match="others can write into it \\(mode 0777\\)"):
        private_directory(folder, what="--out-dir plans")
    assert mode(folder) == 0o777  # theirs: not chmod-ed


def test_a_symlink_swapped_in_after_mkdir_is_not_chmod_ed_through(tmp_path: Path, victim: Path, monkeypatch) -> None:
    """The folder is replaced by a symlink between our mkdir and our chmod (the parent is
    others' to write): the chmod must not follow it to what it points at."""
    folder = tmp_path / "plans"
    victim_folder = victim.parent
    victim_folder.chmod(0o755)
    real_mkdir = Path.mkdir

    def mkdir_then_swap(self, mode=0o777, parents=False, exist_ok=False):
        real_mkdir(self, mode, parents, exist_ok)
        if self == folder:
            os.rmdir(self)
            os.symlink(victim_folder, self)

    monkeypatch.setattr(Path, "mkdir", mkdir_then_swap)
    with pytest.raises(UserError):
        private_directory(folder, what="--out-dir plans")
    assert mode(victim_folder) == 0o755
