"""Run a node set from a ROS parameters file, where no ``ros2 launch`` exists (every plain-venv install).

    python -m llara_ros.bringup config/sim_demo.yaml [--in-process] [--nodes sim_node,action_node]

Each top-level key of the parameters file that names an executable of this
package (``sim_node``, ``action_node``, ``policy_node``, ``recorder_node``) is
started with ``--ros-args --params-file FILE`` — exactly what
``launch/sim_demo.launch.py`` does (a test reads the launch files and checks
that they start the same executables with the same files). Nodes run as
subprocesses (default: one crash stops nothing else, and Ctrl-C stops all), or
in this process on one MultiThreadedExecutor (``--in-process``).

The Fast DDS profile ``config/fastdds.xml`` (16 MiB shared-memory segment, UDPv4
fallback) is set through ``FASTDDS_DEFAULT_PROFILES_FILE`` unless the
environment already names one: a 640×480 image then crosses processes in
≈2.5 ms instead of ≈13 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from llara_core.errors import ConfigError
from llara_core.fileio import expand_path
from llara_core.resources import resource_path

#: executable -> module:class of every node a parameters file may start.
NODES = {
    "sim_node": "llara_ros.sim_node:SimNode",
    "action_node": "llara_ros.action_node:ActionNode",
    "policy_node": "llara_ros.policy_node:PolicyNode",
    "recorder_node": "llara_ros.recorder_node:RecorderNode",
    "console_node": "llara_ros.console_node:ConsoleNode",
}


def dds_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: os.environ) with FASTDDS_DEFAULT_PROFILES_FILE set to the shipped profile if unset."""
    out = dict(os.environ if env is None else env)
    out.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(resource_path("config", "fastdds.xml")))
    return out


#: Fast DDS well-known ports (RTPS spec 9.6.1.1): PB + DG·domain + d1 + PG·participant, unicast metatraffic
_PB, _DG, _D1, _PG = 7400, 250, 10, 2
DOMAIN_RANGE = range(1, 101)  # ROS_DOMAIN_IDs safe on every OS (ROS 2 docs: 0-101; 0 is everyone's default)


def domain_in_use(domain: int, participants: int = 4) -> bool:
    """Whether a DDS participant on this machine holds one of ``domain``'s first unicast discovery ports."""
    import socket

    for pid in range(participants):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("0.0.0.0", _PB + _DG * domain + _D1 + _PG * pid))
            except OSError:
                return True
    return False


def isolate(domain: int | None = None, env: dict[str, str] | None = None) -> str:
    """Put ``env`` (default: os.environ) on a private ROS graph; returns the line that says so.

    A demo must never reach someone else's robot: default discovery reaches
    every host of the subnet on domain 0, where a lab's robot drivers listen.
    This sets a ``ROS_DOMAIN_ID`` (``domain``, else a free one picked at random,
    never 0 and never the one the environment had) and limits discovery to this
    machine: ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (Iron and later) and,
    on Humble, ``ROS_LOCALHOST_ONLY=1``; ``ROS_STATIC_PEERS`` is cleared.
    """
    import random

    target = os.environ if env is None else env
    if domain is None:
        taken = target.get("ROS_DOMAIN_ID", "0")
        free = [d for d in DOMAIN_RANGE if str(d) != taken and not domain_in_use(d)]
        if not free:
            raise ConfigError("no free ROS_DOMAIN_ID in 1-100 on this machine: give one with --domain-id")
        domain = random.SystemRandom().choice(free)
    elif domain not in DOMAIN_RANGE:
        raise ConfigError(f"--domain-id must be in 1-100 (0 is every robot's default domain), got {domain}")
    target["ROS_DOMAIN_ID"] = str(domain)
    target["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    target.pop("ROS_STATIC_PEERS", None)
    if target.get("ROS_DISTRO") == "humble":
        target["ROS_LOCALHOST_ONLY"] = "1"  # Humble predates the discovery range
    return (
        f"private ROS graph: ROS_DOMAIN_ID={domain}, discovery limited to this machine "
        f"(ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST{', ROS_LOCALHOST_ONLY=1' if 'ROS_LOCALHOST_ONLY' in target else ''})"
        " — nothing outside this run hears it or is commanded by it"
    )


def nodes_of(params_file: str | Path, only: Sequence[str] | None = None) -> list[str]:
    """The executables a parameters file configures (its top-level keys that are nodes of this package)."""
    path = Path(expand_path(str(params_file)))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    names = [k.lstrip("/") for k in data if k.lstrip("/") in NODES]
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise ConfigError(f"{path} configures {names}, not {unknown}")
        names = [n for n in names if n in only]
    if not names:
        raise ConfigError(f"{path} configures none of {sorted(NODES)}")
    return names


def start(
    params_file: str | Path,
    only: Sequence[str] | None = None,
    log_dir: Path | None = None,
    extra: Sequence[str] = (),
    nice: Mapping[str, int] | None = None,
) -> dict[str, subprocess.Popen[bytes]]:
    """Start each node of the file as a subprocess (``python -m llara_ros.<node>``); returns them by name.

    ``nice``: node name -> niceness increment (``nice -n``), for the nodes that must yield the CPU to the others
    (make demo: the simulator and the recorder stand in for hardware that has its own computers).
    """
    path = Path(expand_path(str(params_file))).resolve()
    env = dds_environment()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    nice_tool = shutil.which("nice")
    for name in nodes_of(path, only):
        cmd = [sys.executable, "-m", f"llara_ros.{name}", "--ros-args", "--params-file", str(path), *extra]
        if nice and nice.get(name) and nice_tool:
            cmd = [nice_tool, "-n", str(nice[name]), *cmd]  # nice execs the node: the pid is the node's
        out: Any = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            out = (log_dir / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
    return procs


def stop(procs: dict[str, subprocess.Popen[bytes]], timeout: float = 10.0) -> dict[str, int]:
    """SIGINT every node (what Ctrl-C and ros2 launch send), then wait; returns the exit codes."""
    for p in procs.values():
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    codes = {}
    for name, p in procs.items():
        try:
            codes[name] = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            codes[name] = p.wait()
    return codes


def run_in_process(params_file: str | Path, only: Sequence[str] | None = None) -> int:
    """Every node of the file in this process, on one MultiThreadedExecutor, until Ctrl-C."""
    import importlib

    import rclpy
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    path = Path(expand_path(str(params_file))).resolve()
    names = nodes_of(path, only)
    os.environ.update(dds_environment())
    rclpy.init(args=["--ros-args", "--params-file", str(path)])
    executor = MultiThreadedExecutor()
    nodes = []
    try:
        for name in names:
            module, cls = NODES[name].split(":")
            node = getattr(importlib.import_module(module), cls)()
            nodes.append(node)
            executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m llara_ros.bringup", description=__doc__.split("\n\n")[0])
    p.add_argument("params_file", help="ROS parameters file whose nodes to start (e.g. config/sim_demo.yaml)")
    p.add_argument("--nodes", help="comma-separated subset of its nodes (default: all of them)")
    p.add_argument("--in-process", action="store_true", help="one process, one MultiThreadedExecutor (default: off)")
    p.add_argument("--log-dir", help="write each node's output to LOG_DIR/<node>.log (default: the terminal)")
    p.add_argument("--private", action="store_true",
                   help="a private ROS graph: a free ROS_DOMAIN_ID, discovery limited to this machine (demos)")  # fmt: skip
    args = p.parse_args(argv)
    only = [n.strip() for n in args.nodes.split(",")] if args.nodes else None
    try:
        if args.private:
            print(isolate(), flush=True)
        if args.in_process:
            return run_in_process(args.params_file, only)
        procs = start(args.params_file, only, Path(args.log_dir) if args.log_dir else None)
    except ConfigError as exc:
        print(f"bringup: {exc}", file=sys.stderr)
        return 2
    print(f"started {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}; Ctrl-C stops them", flush=True)

    def interrupted(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (kill, systemd, a supervisor) stops the nodes as Ctrl-C does

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
        dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
        print(f"bringup: {dead} exited; stopping the others", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not orphan the nodes
        signal.signal(sig, signal.SIG_IGN)
    codes = stop(procs)
    return max([0, *(c for c in codes.values() if c and c > 0)])


if __name__ == "__main__":
    sys.exit(main())
