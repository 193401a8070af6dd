"""Exception types the command line turns into one-line messages, and :func:`file_kind`, which
says what a file that cannot be read holds."""

from __future__ import annotations

import zipfile
from pathlib import Path


class UsageError(Exception):
    """A problem with what the user asked for: reported in one line, exit status 2."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row): one line, exit status 1."""


class InputFileError(UsageError, ValueError):
    """A file given as input is not what was asked for (a folder, an empty, truncated or damaged
    file, another kind of file): one line, exit status 2. Also a ``ValueError``, as these were
    before."""


_ZIP = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"


def file_kind(path: str | Path) -> str:
    """What ``path`` holds, as words for a message: ``"missing"``, ``"a folder"``, ``"empty"``,
    ``"an .npz archive"``, ``"a single .npy array"``, ``"a PyTorch file"``, ``"a zip archive"``,
    ``"truncated or damaged"`` (a zip archive without its directory, e.g. a file copied in
    part), ``"a text file"`` or ``"a binary file"``. Reads the first bytes and, for a zip
    archive, its directory; nothing is unpickled."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if path.is_dir():
        return "a folder"
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "unreadable"
    if not head:
        return "empty"
    if head.startswith((_ZIP, _EMPTY_ZIP)):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return "truncated or damaged"
        if names and all(n.endswith(".npy") for n in names):
            return "an .npz archive"
        if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return "a PyTorch file"
        return "a zip archive"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array"
    if head.startswith(b"\x80"):  # a pickle (PyTorch's older format), or a corrupt one
        return "a PyTorch file"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 4:  # not a character cut by the 4096-byte window
            return "a binary file"
    return "a text file" if b"\x00" not in head else "a binary file"
