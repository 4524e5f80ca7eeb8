"""rclpy message classes by type name, and whether a message package is installed in this environment.

A plain venv has only the message packages that exist as PyPI wheels
(``requirements-ros.txt``); ``tf2_msgs`` and ``vision_msgs`` have none. Nodes
ask here before subscribing, so a missing package is a clear message at start,
not an ImportError in a callback.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


def message_class(msgtype: str) -> Any:
    """'sensor_msgs/msg/Image' -> the rclpy message class (ImportError names the missing package)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def package_available(pkg: str) -> bool:
    """Whether the ROS message package ``pkg`` (e.g. tf2_msgs) can be imported here."""
    try:
        return importlib.util.find_spec(f"{pkg}.msg") is not None
    except ModuleNotFoundError:
        return False
