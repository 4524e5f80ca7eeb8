"""What both launch files share: nodes a launch may go without (RViz, robot_state_publisher, the console).

A ``Node(package="rviz2", …)`` whose package is not installed makes ``ros2 launch``
fail as a whole, after it has started the other nodes, which are then left
running. :func:`optional_node` starts such a node only where its executable
exists and otherwise logs one line saying what is missing and how to install it;
the rest of the launch goes on. Only launch files import this module (``launch``
and ``launch_ros`` are imported when :func:`optional_node` is called: a plain venv
has neither, and the check itself, :func:`missing_executable`, needs only the
ament index).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def missing_executable(package: str, executable: str) -> str | None:
    """None where ``ros2 run package executable`` would find it; else one line saying what is missing.

    The same lookup launch_ros makes (the package's ament prefix, then
    ``lib/<package>/<executable>``), done before the node is started.
    """
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    distro = os.environ.get("ROS_DISTRO", "<distro>")
    try:
        prefix = get_package_prefix(package)
    except (PackageNotFoundError, ValueError, OSError):  # OSError: no AMENT_PREFIX_PATH at all
        return f"{package} is not installed (sudo apt install ros-{distro}-{package.replace('_', '-')})"
    path = Path(prefix) / "lib" / package / executable
    if not (path.is_file() and os.access(path, os.X_OK)):
        return f"{package} is installed in {prefix} but has no executable {executable}"
    return None


def optional_node(package: str, executable: str, enabled: str, **node_args: Any) -> Any:
    """A launch action: ``Node(package, executable, **node_args)`` if launch argument ``enabled`` is true and the
    executable exists; a one-line log naming what is missing (and the argument that turns it off) otherwise."""
    from launch.actions import LogInfo, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def start(context: Any) -> list[Any]:
        why = missing_executable(package, executable)
        if why is not None:
            return [LogInfo(msg=f"not starting {executable}: {why}; {enabled}:=false skips it")]
        return [Node(package=package, executable=executable, **node_args)]

    return OpaqueFunction(function=start, condition=IfCondition(LaunchConfiguration(enabled)))


def console_node(enabled: str = "console") -> Any:
    """The operator console (``console_node``), started when launch argument ``enabled`` is true."""
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    return Node(package="llara_ros", executable="console_node", name="console_node", output="screen",
                condition=IfCondition(LaunchConfiguration(enabled)))  # fmt: skip
