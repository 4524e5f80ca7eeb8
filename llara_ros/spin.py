"""One way every node process starts, spins and stops (``main`` of each node is one call of :func:`run_node`).

Construction errors (a bad parameter, a model that does not load) are one line
on stderr and exit code 2, never a traceback. Shutdown follows the rclpy
examples — the node's ``close()`` (stop motion with a hold, flush a bag, stop the
worker), then ``executor.shutdown()`` and ``destroy_node()`` before
``rclpy.shutdown()`` — with one difference that matters on a robot: SIGINT
(Ctrl-C, ``ros2 launch``) and SIGTERM are handled here, not by rclpy. rclpy's own
handler shuts the context down at once, so ``close()`` ran with a dead context:
no hold reached the arm, the last step_done failed to publish (a traceback), and
the node reported the stop as an e-stop. Here a signal only ends the spin loop;
``close()`` runs while the context is up, the last log line names the signal, and
the process exits 0 within the spin timeout (0.1 s) plus ``close()``. A second
signal during ``close()`` ends the process at once.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import FrameType
from typing import Any, TypeVar

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from llara_core.errors import LlaraError

T = TypeVar("T")
SPIN_TIMEOUT_S = 0.1  # how often the spin loop looks at the stop flag when nothing else wakes it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Stop:
    """What the signal handlers set: the name of the first signal; a second one exits immediately."""

    def __init__(self) -> None:
        self.signal = ""

    def during_construction(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt  # a model that loads for minutes is abandoned at once (its thread is a daemon)

    def while_spinning(self, signum: int, frame: FrameType | None) -> None:
        if self.signal:
            os._exit(0)  # asked twice: the user does not want to wait for close()
        self.signal = signal.Signals(signum).name


def run_node(make: Callable[[], Node], name: str, args: list[str] | None = None, threads: int = 1) -> int:
    """Create the node with ``make`` and spin it until a signal or an external shutdown; returns the exit code."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = _Stop()
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop.during_construction)
    try:
        node = make()
    except KeyboardInterrupt:
        print(f"{name}: stopped while starting", file=sys.stderr)
        rclpy.try_shutdown()
        return 0
    except (LlaraError, ValueError, OSError) as exc:  # OSError: a missing model or URDF file
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    for sig in STOP_SIGNALS:
        signal.signal(sig, stop.while_spinning)
    executor = SingleThreadedExecutor() if threads == 1 else MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    why = "the ROS context was shut down"
    try:
        while not stop.signal and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        why = stop.signal or why
        _drain(executor)  # callbacks already handed out (a lifecycle autostart, a service) end before close()
        close = getattr(node, "close", None)
        if callable(close):
            close(f"shutdown ({why})")
        _drain(executor)
        node.get_logger().info(f"shut down ({why})")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _drain(executor: SingleThreadedExecutor | MultiThreadedExecutor, timeout_s: float = 0.5) -> None:
    """Let callbacks a MultiThreadedExecutor already handed to its pool finish before it is shut down.

    rclpy 9 (Kilted) destroys the executor's guard condition in ``shutdown()`` before
    its pool has run what it was given, and each such callback then ends with
    ``InvalidHandle`` on that guard — printed at exit as "The following exception was
    never retrieved" (seen in 1 of 2 SIGTERMs of an action node receiving 20 Hz
    topics). The submitted handlers have no public accessor, hence ``_futures``.
    """
    end = time.monotonic() + timeout_s
    for fut in list(getattr(executor, "_futures", ())):
        while not fut.done() and time.monotonic() < end:
            time.sleep(0.005)


class DaemonWorker:
    """One thread that runs submitted calls in order and returns futures — a ``ThreadPoolExecutor(1)`` whose thread
    is a daemon: the interpreter joins pool threads at exit, so a 7B model's answer (or a remote call waiting for
    its timeout) held a stopped node for seconds; a daemon thread is abandoned instead."""

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        fut: Future[T] = Future()
        self._queue.put((fut, fn, args))
        return fut

    def shutdown(self) -> None:
        """Run nothing more (calls already queued are cancelled; one running finishes or is abandoned)."""
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fut, fn, args = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as exc:  # delivered to the caller through the future, as an executor does
                fut.set_exception(exc)
        while True:  # cancel what was queued behind the shutdown
            try:
                rest = self._queue.get_nowait()
            except queue.Empty:
                return
            if rest is not None:
                rest[0].cancel()
