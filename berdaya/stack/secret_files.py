"""Files that hold secrets (keys, passwords, tokens): written whole or not at all, and readable by their owner alone."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

OWNER_ONLY = 0o600


def write_secret(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600 from the first byte. The text goes to a file beside it first and takes
    its place only once it is safely on disk: a write cut short (a full disk, a crash) leaves the old file whole,
    where writing in place would leave neither the old keys nor the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file 0600 whatever the umask, so no one else can open it, even while it is being written.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def read_secret(path: Path) -> str:
    """The file's text; a file others may read (made by hand, or by an older Berdaya) is made its owner's alone
    first."""
    if stat.S_IMODE(path.stat().st_mode) & ~OWNER_ONLY:
        path.chmod(OWNER_ONLY)
    return path.read_text(encoding="utf-8")


def _sync_directory(directory: Path) -> None:
    # The rename is durable only once the directory is; some systems can't open or sync a directory, and there the
    # file is still whole, merely perhaps the old one after a crash.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
