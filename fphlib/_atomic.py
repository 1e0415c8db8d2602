"""Atomic saves of a directory of files: all or nothing, even if the process is killed; and
the ownership rule: fphlib deletes or replaces only what it can prove it wrote.

One home for the protocol every saved artefact uses (a simulation result, a live-kernel
recording): the files are written into a temporary sibling directory
``.NAME<marker>PID-RANDOM`` which then replaces ``path`` with ``os.replace``; a result being
replaced is first swapped out to ``.NAME.fphlib-old-PID-RANDOM`` and put back if the swap-in
fails. A later save of the same path removes what a killed save left behind (its process is
gone) and puts a swapped-out directory back when its replacement never arrived.

Ownership: every directory fphlib creates (a saved result or recording, a sweep cache, the
temporary directories of a save or of a file write) holds the file :data:`OWNER`, written
first, whose first line says what it is (``fphlib-owned result``). Only a directory holding
it is ever replaced or removed: a user's directory that merely holds files named like a
result, or a stale-looking ``.NAME.fphlib-tmp-PID`` directory without it, is left alone.
A result saved before the marker existed is recognised by its caller's ``is_legacy`` check
(:func:`fphlib.api.result.is_saved_result`: exactly the files of a result format, and it
loads). docs/design.md §6 states the rule for users.
"""

import errno
import os
import secrets
import shutil
from pathlib import Path

TMP = ".fphlib-tmp-"  # temporary directories of a save: .NAME.fphlib-tmp-PID-RANDOM
OLD = ".fphlib-old-"  # the replaced directory while it is swapped out
OWNER = ".fphlib-owner"  # the marker file of a directory fphlib created
_SIGNATURE = "fphlib-owned "  # first line: _SIGNATURE + kind
_EXPLAIN = ("fphlib created this directory and may replace or remove it (a result saved "
            "again with overwrite=True, a temporary of a killed save, a sweep's cache); "
            "delete this file to keep fphlib from ever doing so.\n")


def mark(directory, kind):
    """Write the :data:`OWNER` marker of ``kind`` into ``directory`` (atomically: a reader
    sees the whole marker or none)."""
    directory = Path(directory)
    tmp = directory / f"{OWNER}.{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.write_text(f"{_SIGNATURE}{kind}\n{_EXPLAIN}", encoding="utf-8")
        os.replace(tmp, directory / OWNER)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def owner(directory):
    """The kind written in ``directory``'s marker, or None if it holds none (no marker, a
    symlink or a directory in its place, or another file of that name)."""
    f = Path(directory) / OWNER
    try:
        if f.is_symlink() or not f.is_file():
            return None
        with open(f, encoding="utf-8", errors="replace") as fh:
            first = fh.readline(200).rstrip("\n")
    except OSError:
        return None
    if not first.startswith(_SIGNATURE):
        return None
    return first[len(_SIGNATURE):] or None


def make_owned_dir(directory, kind):
    """Create ``directory`` (parents too) and mark it as fphlib's ``kind`` unless it holds a
    marker already (whether an existing directory may be used is the caller's check)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if owner(directory) is None:
        mark(directory, kind)
    return directory


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def clean_stale(path, is_ours):
    """Remove temporary directories of earlier saves of ``path`` killed midway (their
    process is gone, and they hold fphlib's :data:`OWNER` marker: a directory merely named
    like one is left alone); a swapped-out directory whose replacement never arrived is put
    back. ``is_ours(dir) -> bool`` says whether a directory holds a complete saved artefact."""
    prefix = f".{path.name}"
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        for marker in (TMP, OLD):
            if not name.startswith(prefix + marker):
                continue
            pid = name[len(prefix + marker):].split("-")[0]
            if not pid.isdigit() or pid_alive(int(pid)) or entry.is_symlink() or \
                    owner(entry) is None:
                continue
            if marker == OLD and not os.path.lexists(path) and is_ours(entry / "x"):
                os.replace(entry / "x", path)
            shutil.rmtree(entry, ignore_errors=True)


def make_dir(parent, name, marker, kind):
    """A new directory ``parent/.name<marker><pid>-<random>`` created with the umask and
    marked as fphlib's (:data:`OWNER` of ``kind``) before anything is written into it."""
    while True:
        d = parent / f".{name}{marker}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            d.mkdir(mode=0o777)  # minus the umask, like every file written into it
        except FileExistsError:
            continue
        try:
            mark(d, kind)
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        return d


def write_file(path, write, kind="file"):
    """Write one file atomically: ``write(tmp_path)`` writes it inside a temporary
    directory fphlib made next to ``path`` (marked; removed afterwards), then it replaces
    ``path`` with ``os.replace``. Stale temporaries of killed writes of ``path`` (marked,
    their process gone) are removed first."""
    path = Path(os.path.abspath(os.fspath(path)))
    clean_stale(path, lambda d: False)
    tmp = make_dir(path.parent, path.name, TMP, kind)
    try:
        write(tmp / path.name)
        os.replace(tmp / path.name, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def save_dir(path, write, is_ours, overwrite=False, what="result"):
    """Write a directory atomically and return its absolute ``Path``.

    Parameters
    ----------
    path : str or os.PathLike
        The directory to create or replace.
    write : callable
        ``write(tmp_dir)`` writes every file into the temporary directory.
    is_ours : callable
        ``is_ours(dir) -> bool``: ``dir`` is a saved artefact of this kind, marked as
        fphlib's (:func:`owner` is ``what``) or saved before the marker existed (only such a
        directory is replaced, and only with ``overwrite=True``).
    overwrite : bool
    what : str
        The artefact's name in error messages ("result", "recording") and the kind its
        :data:`OWNER` marker records.
    """
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite: {overwrite!r} is not allowed; expected True or False")
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"path: {path!r} is not allowed; expected a directory path")
    path = Path(os.path.abspath(os.fspath(path)))
    if path.parent == path:
        raise FileExistsError(f"{path}: cannot save a {what} as the root directory")
    clean_stale(path, is_ours)  # first: a directory a killed save swapped out is put back
    _check_target(path, is_ours, overwrite, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_dir(path.parent, path.name, TMP, what)  # its marker becomes the result's
    try:
        write(tmp)
        for _ in range(RACES):
            if _swap_in(tmp, path, is_ours, overwrite, what):
                return path
        raise FileExistsError(f"{path}: other saves of it ran at the same time and this one "
                              f"did not get in after {RACES} tries; not saved")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it became ``path``


RACES = 20  # tries of a save whose target another save changes at the same moment


def _check_target(path, is_ours, overwrite, what):
    """Refuse a target that is not fphlib's ``what`` (or is one, without ``overwrite``);
    True if it holds a saved ``what`` to replace."""
    if not os.path.lexists(path):
        return False
    if path.is_symlink() or not path.is_dir():
        raise FileExistsError(f"{path}: exists and is not a directory; not replaced")
    if not any(path.iterdir()):
        return False
    kind = owner(path)
    if kind is not None and kind != what:
        raise FileExistsError(f"{path}: is an fphlib {kind}, not a {what}; not "
                              "replaced: choose a new or empty directory")
    if not is_ours(path):
        raise FileExistsError(
            f"{path}: exists and is not an fphlib {what} (it holds other files); "
            "not replaced: choose a new or empty directory"
        )
    if not overwrite:
        raise FileExistsError(f"{path}: a saved {what} exists; pass overwrite=True to replace it")
    return True


def _swap_in(tmp, path, is_ours, overwrite, what):
    """Move ``tmp`` to ``path``, swapping out what is there (checked again: another save may
    have put its own there since); False if another save got in the way: try again."""
    if not _check_target(path, is_ours, overwrite, what):
        try:
            os.replace(tmp, path)  # over nothing or an empty directory
            return True
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):  # another save's just arrived
                return False
            raise
    old = make_dir(path.parent, path.name, OLD, what)
    try:
        try:
            os.replace(path, old / "x")
        except FileNotFoundError:  # another save swapped it out first
            return False
        try:
            os.replace(tmp, path)
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                return False  # another save's arrived: ours replaces it on the next try
            os.replace(old / "x", path)
            raise
        except BaseException:
            os.replace(old / "x", path)
            raise
        return True
    finally:
        shutil.rmtree(old, ignore_errors=True)
