"""Where the shared data files (real MNIST digits, real microscopy) are found.

The files are not shipped with the package (licences, size), so every loader goes
through `require`, which fails with one message that tells the user how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SAVGAN_DATA_DIR"


class DataNotFoundError(FileNotFoundError):
    """A data file the caller needs is not in the data folder."""


def data_root() -> Path:
    """The shared data folder: $SAVGAN_DATA_DIR, else `<repo root>/../shared/data`.

    The fallback is the layout of a source checkout; in a wheel install it usually does
    not exist, which `require` reports when a file is actually needed.
    """
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "data"


def require(relative: str) -> Path:
    """The path of `relative` inside the data folder; raises if the file is not there."""
    root = data_root()
    path = root / relative
    if path.is_file():
        return path
    source = f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV) else "the default location"
    raise DataNotFoundError(
        f"data file {relative!r} not found: looked for {path} (data folder {root}, "
        f"taken from {source}). Set the environment variable {DATA_DIR_ENV} to the folder "
        f"that holds {relative!r}, or put the files there "
        f"(see shared/data/README.md for where each file comes from)."
    )
