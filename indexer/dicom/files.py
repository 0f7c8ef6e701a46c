"""The files of an archive folder, read safely: only regular files are ever opened for reading.

A FIFO blocks ``open()`` until a writer comes (forever, in an archive); a link to ``/dev/zero`` never ends; a
symlink loop cannot be opened at all. Each is a :class:`NotRegularFile` with a readable reason, recorded as an
ingest error like any other bad file, and the batch goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(OSError):
    """The path is not a regular file (FIFO, device, socket, folder) or cannot be resolved (symlink loop)."""


def _what(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open ``path`` for binary reading if, and only if, it is a regular file (symlinks followed).

    Raises
    ------
    NotRegularFile
        Anything but a regular file, or a symlink that loops.
    OSError
        The file vanished or cannot be read.
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP
            raise NotRegularFile("a symbolic link that loops") from exc
        raise
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(f"{_what(st.st_mode)}, not a regular file")
    # Non-blocking open and a second check on the open file: it may have been swapped for a FIFO in between.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(f"{_what(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def iter_files(root: Path, skipped: list[tuple[Path, str]] | None = None) -> Iterator[Path]:
    """Every file entry under ``root`` in a stable order (FIFOs, links and devices too: reading them is
    :func:`open_regular`'s to refuse). Folders that cannot be listed and symlinks to folders (not followed, so
    a link loop cannot make the walk endless) are appended to ``skipped`` with a reason."""

    def unreadable(exc: OSError) -> None:
        if skipped is not None:
            skipped.append((Path(exc.filename or root), f"folder cannot be listed ({exc.strerror or exc})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                dirnames.remove(name)
                if skipped is not None:
                    skipped.append((Path(dirpath) / name, "a symbolic link to a folder, not followed"))
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def file_ref(path: str | Path) -> str:
    """A short, stable reference to a file for logs: archive paths hold patient IDs and accession numbers."""
    return "file:" + hashlib.sha1(str(path).encode()).hexdigest()[:12]


@contextmanager
def reader_warnings(path: str | Path, *, show_paths: bool | None = None) -> Iterator[None]:
    """Route the DICOM reader's warnings for ``path`` to the log, naming the file by :func:`file_ref` and with
    the path cut out of the message, so that no identifier reaches the console; ``show_paths`` (the ``log_paths``
    setting) keeps the path for someone debugging their own archive."""
    if show_paths is None:
        from catalog.settings import get_settings

        show_paths = get_settings().log_paths
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    name = str(path) if show_paths else file_ref(path)
    for w in caught:
        message = str(w.message)
        if not show_paths:
            message = message.replace(str(path), name).replace(Path(path).name, name)
        log.warning("DICOM reader, %s: %s", name, message)
