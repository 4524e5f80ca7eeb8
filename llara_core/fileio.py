"""Atomic file writes: a reader (or a crash) never sees half a file.

Every file the library produces — dataset records and images, reports, models'
metadata, bag sidecars — goes through here: written to a temporary file in the
same folder, flushed to disk, then renamed over the target (rename is atomic on
POSIX file systems within one folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """``obj`` as indented UTF-8 JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def expand_path(value: str, base_dir: str | os.PathLike[str] | None = None) -> str:
    """``~`` and ``$VARS`` expanded, ``package://pkg/…`` resolved; a relative path is taken relative to ``base_dir``.

    Every path-valued flag, YAML key and ROS parameter goes through this: a ROS
    parameter such as ``out:=~/dataset`` is never shell-expanded.
    """
    if value.startswith("package://"):
        from llara_core.resources import resolve_package_url

        return resolve_package_url(value)
    p = Path(os.path.expandvars(os.path.expanduser(value)))
    if base_dir is not None and not p.is_absolute():
        p = Path(base_dir) / p
    return str(p)


def existing_path(value: str, what: str) -> Path:
    """``value`` expanded (:func:`expand_path`) when it exists, else a UsageError naming ``what`` and the path."""
    from llara_core.errors import UsageError

    p = Path(expand_path(value))
    if not p.exists():
        raise UsageError(f"{what} {p} does not exist")
    return p
