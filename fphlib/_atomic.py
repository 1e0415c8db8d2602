"""Atomic saves of a directory of files: all or nothing, even if the process is killed.

One home for the protocol every saved artefact uses (a simulation result, a live-kernel
recording): the files are written into a temporary sibling directory
``.NAME<marker>PID-RANDOM`` which then replaces ``path`` with ``os.replace``; a result being
replaced is first swapped out to ``.NAME.fphlib-old-PID-RANDOM`` and put back if the swap-in
fails. A later save of the same path removes what a killed save left behind (its process is
gone) and puts a swapped-out directory back when its replacement never arrived.
"""

import os
import secrets
import shutil
from pathlib import Path

TMP = ".fphlib-tmp-"  # temporary directories of a save: .NAME.fphlib-tmp-PID-RANDOM
OLD = ".fphlib-old-"  # the replaced directory while it is swapped out


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
    process is gone); a swapped-out directory whose replacement never arrived is put back.
    ``is_ours(dir) -> bool`` says whether a directory holds a complete saved artefact."""
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
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            if marker == OLD and not os.path.lexists(path) and is_ours(entry / "x"):
                os.replace(entry / "x", path)
            shutil.rmtree(entry, ignore_errors=True)


def make_dir(parent, name, marker):
    """A new directory ``parent/.name<marker><pid>-<random>`` created with the umask."""
    while True:
        d = parent / f".{name}{marker}{os.getpid()}-{secrets.token_hex(4)}"
        try:
            d.mkdir(mode=0o777)  # minus the umask, like every file written into it
            return d
        except FileExistsError:
            continue


def save_dir(path, write, is_ours, overwrite=False, what="result"):
    """Write a directory atomically and return its absolute ``Path``.

    Parameters
    ----------
    path : str or os.PathLike
        The directory to create or replace.
    write : callable
        ``write(tmp_dir)`` writes every file into the temporary directory.
    is_ours : callable
        ``is_ours(dir) -> bool``: ``dir`` holds only the files of a saved artefact of this
        kind (only such a directory is replaced, and only with ``overwrite=True``).
    overwrite : bool
    what : str
        The artefact's name in error messages ("result", "recording").
    """
    if not isinstance(overwrite, bool):
        raise ValueError(f"overwrite: {overwrite!r} is not allowed; expected True or False")
    if not isinstance(path, str | os.PathLike) or not os.fspath(path):
        raise ValueError(f"path: {path!r} is not allowed; expected a directory path")
    path = Path(os.path.abspath(os.fspath(path)))
    if path.parent == path:
        raise FileExistsError(f"{path}: cannot save a {what} as the root directory")
    clean_stale(path, is_ours)  # first: a directory a killed save swapped out is put back
    replace = False
    if os.path.lexists(path):
        if path.is_symlink() or not path.is_dir():
            raise FileExistsError(f"{path}: exists and is not a directory; not replaced")
        if any(path.iterdir()):
            if not is_ours(path):
                raise FileExistsError(
                    f"{path}: exists and is not an fphlib {what} (it holds other files); "
                    "not replaced: choose a new or empty directory"
                )
            if not overwrite:
                raise FileExistsError(
                    f"{path}: a saved {what} exists; pass overwrite=True to replace it"
                )
        replace = True
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_dir(path.parent, path.name, TMP)
    try:
        write(tmp)
        if replace:
            old = make_dir(path.parent, path.name, OLD)
            os.replace(path, old / "x")
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old / "x", path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
