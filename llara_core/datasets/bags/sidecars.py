"""``llara_episode.yaml`` beside a bag: the instruction and the operator's success flag (what the recorder writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llara_core.datasets.bags.options import EPISODE_SIDECAR, BagError
from llara_core.fileio import atomic_write_bytes


def write_sidecar(bag: str | Path, instruction: str | None, success: bool | None, **extra: Any) -> Path:
    """Write ``llara_episode.yaml`` (instruction, operator success flag, anything else) atomically."""
    import yaml

    path = Path(bag) / EPISODE_SIDECAR
    data = {"instruction": instruction, "success": success, **extra}
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
    return path


def read_sidecar(bag: str | Path) -> dict[str, Any]:
    """The sidecar's mapping ({} when there is none); BagError when it is not a YAML mapping."""
    import yaml

    path = Path(bag) / EPISODE_SIDECAR
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise BagError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BagError(f"{path}: expected a mapping")
    return data
