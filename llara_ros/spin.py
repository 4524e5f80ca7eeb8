"""One way every node process starts, spins and stops (``main`` of each node is one call of :func:`run_node`).

Construction errors (a bad parameter, a model that does not load) are one line
on stderr and exit code 2, never a traceback. Shutdown follows the rclpy
examples: the node's ``close()`` (stop motion, flush a bag, stop the worker),
then ``executor.shutdown()`` and ``destroy_node()`` before ``rclpy.shutdown()``,
with Ctrl-C and an external shutdown (SIGTERM, ros2 launch) handled quietly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node

from llara_core.errors import LlaraError


def run_node(make: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 1) -> int:
    """Create the node with ``make`` and spin it until shutdown; returns the process exit code."""
    rclpy.init(args=args)
    try:
        node = make()
    except (LlaraError, ValueError, OSError) as exc:  # OSError: a missing model or URDF file
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        close = getattr(node, "close", None)
        if callable(close):
            close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
