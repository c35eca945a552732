"""Atomic file replacement shared by every writer.

A result file is either absent or complete: writers produce a temporary file in the destination
folder (same file system, so the final rename is atomic) and only rename it into place once it
is fully written and flushed. A failed write removes its temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` atomically.

    The temporary name keeps the destination's suffixes (``.x.partial.mp4``) because ffmpeg and
    some libraries choose the container from the extension.
    """
    final = Path(path)
    if not final.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {final}: folder {final.parent} does not exist; create it first"
        )
    suffix = "".join(final.suffixes) or ".tmp"
    fd, tmp_name = tempfile.mkstemp(
        dir=final.parent, prefix=f".{final.name}.", suffix=f".partial{suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
