"""Where the package's data files are: the source tree, a venv install, or a ROS 2 workspace's share/.

``urdf/``, ``config/`` and ``models/`` sit at the repository root in a
checkout; ``setup.py`` installs them into ``share/llara_ros/`` (colcon, pip).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = "llara_ros"


def resource_path(*parts: str, env: str | None = None) -> Path:
    """The first existing ``<root>/<parts…>``: $``env``, the source tree, sys.prefix/share, the ament index."""
    candidates = [Path(os.environ[env])] if env and os.environ.get(env) else []
    candidates.append(Path(__file__).resolve().parents[1].joinpath(*parts))
    candidates.append(Path(sys.prefix, "share", PACKAGE, *parts))
    try:  # a sourced ROS 2 workspace
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE), *parts))
    except Exception:  # ament_index is absent in a plain venv, or the package is not installed there
        pass
    for c in candidates:
        if c.exists():
            return c
    hint = f"; set {env}" if env else ""
    raise FileNotFoundError(f"{'/'.join(parts)} not found; looked in {[str(c) for c in candidates]}{hint}")


def resolve_package_url(url: str) -> str:
    """``package://<pkg>/<path>`` (the ROS convention of URDFs and configs) -> a file path.

    ``llara_ros`` resolves through :func:`resource_path` (source tree, venv or
    workspace); other packages through the ament index of a sourced workspace.
    Anything else is returned unchanged.
    """
    if not url.startswith("package://"):
        return url
    pkg, _, rel = url[len("package://") :].partition("/")
    if pkg == PACKAGE:
        return str(resource_path(*Path(rel).parts))
    try:
        from ament_index_python.packages import get_package_share_directory

        return str(Path(get_package_share_directory(pkg), rel))
    except Exception as exc:  # absent ament index, or the package is not installed
        raise FileNotFoundError(f"{url}: package {pkg!r} not found (source its workspace)") from exc


def demo_model_path() -> Path:
    """The shipped demo model (``models/llara-tiny-sim``), or $LLARA_MODEL."""
    return resource_path("models", "llara-tiny-sim", env="LLARA_MODEL")
