"""The loop under a camera's load for minutes: does anything grow, slow down, go stale or go unanswered?

    python scripts/soak_ros.py [--minutes 10] [--rate 30] [--size 640x480] [--report-s 60] [--json out.json]

policy_node (the shipped model, config/sim_demo.yaml's settings) and action_node
(the same settings with ``executor: dry_run``: every answer is parsed, checked
and planned as on a robot, nothing moves) run as processes, on a private ROS
graph. This process is the robot: a simulator frame resized to ``--size`` at
``--rate`` Hz with its camera_info, joint states, and a task that is given
again whenever an episode ends, so the policy answers continuously.

Every ``--report-s`` it prints one line: RSS of both nodes, the loop's latency
(step_done -> the next action_text: what a robot waits between steps) p50/p95/p99,
the model's own p50/p95 from /diagnostics, frames received vs used, the oldest
frame the model was given, and actions vs step_done. The summary checks what a
camera-rate loop must keep: RSS growth after warm-up, every used frame younger
than ``max_image_age_s``, one step_done per action. Exit code 1 when one fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RSS_GROWTH_MB = 20.0  # the bar for "flat", after warm-up


def rss_mb(pid: int) -> float:
    """Resident set size of a process (Linux /proc), MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pct_ms(xs: list[float], q: float) -> float | None:
    return float(np.percentile(np.asarray(xs) * 1000.0, q)) if xs else None


def node_params(work: Path) -> Path:
    """sim_demo.yaml's policy and action nodes, the action node in dry run on wall time, no settling wait."""
    params = yaml.safe_load((ROOT / "config" / "sim_demo.yaml").read_text())
    act = params["action_node"]["ros__parameters"]
    act.update(executor="dry_run", use_sim_time=False)
    # nothing moves in a dry run: no settling wait before the re-query, so the loop figure is the node's own
    params["policy_node"]["ros__parameters"]["settle_s"] = 0.0
    act.pop("camera_info_file", None)
    path = work / "soak.yaml"
    path.write_text(yaml.safe_dump({k: params[k] for k in ("policy_node", "action_node")}))
    return path


def run(minutes: float, rate: float, size: tuple[int, int], report_s: float, warmup_s: float) -> dict[str, Any]:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import MultiThreadedExecutor
    from sensor_msgs.msg import CameraInfo, Image, JointState
    from std_msgs.msg import String

    from llara_core.planning import StepDone
    from llara_core.sim.arm import ARM_JOINTS, HOME_Q
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.tasks import make_task
    from llara_ros import bringup
    from llara_ros.conversions import model_to_camera_info, numpy_to_image
    from llara_ros.topics import COMMAND, SENSOR, TASK

    print(bringup.isolate(), flush=True)
    task = make_task("l1_placement", 0)
    with TabletopEnv(task.scene, width=size[0], height=size[1]) as env:  # the scene as a camera of that size sees it
        frame, info = env.render(), model_to_camera_info(env.camera)
    work = Path(tempfile.mkdtemp(prefix="llara-soak-"))
    params = node_params(work)
    max_age = float(yaml.safe_load(params.read_text())["policy_node"]["ros__parameters"]["max_image_age_s"])
    procs = bringup.start(params, log_dir=work)
    os.environ.update(bringup.dds_environment())
    rclpy.init()
    node = rclpy.create_node("soak_robot")
    lock = threading.Lock()
    actions: list[tuple[float, str]] = []
    dones: list[tuple[float, StepDone]] = []
    diag: dict[str, str] = {}
    frame_age_max: list[float] = []
    tasks: list[float] = []  # when each episode's task was given

    def on_action(msg: String) -> None:
        with lock:
            actions.append((time.monotonic(), msg.data))

    def on_done(msg: String) -> None:
        with lock:
            dones.append((time.monotonic(), StepDone.from_json(msg.data)))

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.endswith("policy_node"):
                values = {kv.key: kv.value for kv in st.values}
                with lock:
                    diag.update(values)
                    if values.get("frame_age_max_ms", "n/a") != "n/a":
                        frame_age_max.append(float(values["frame_age_max_ms"]) / 1000.0)

    node.create_subscription(String, "action_text", on_action, COMMAND)
    node.create_subscription(String, "step_done", on_done, COMMAND)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, COMMAND)
    img_pub = node.create_publisher(Image, "/camera/color/image_raw", SENSOR)
    info_pub = node.create_publisher(CameraInfo, "/camera/color/camera_info", SENSOR)
    joints_pub = node.create_publisher(JointState, "/joint_states", SENSOR)
    task_pub = node.create_publisher(String, "/task", TASK)
    joints = JointState(name=list(ARM_JOINTS), position=[float(v) for v in HOME_Q])

    def camera() -> None:
        msg = numpy_to_image(frame, "rgb8")
        msg.header.stamp = node.get_clock().now().to_msg()
        img_pub.publish(msg)
        info_pub.publish(info)
        joints_pub.publish(joints)

    node.create_timer(1.0 / rate, camera)
    ex = MultiThreadedExecutor(num_threads=2)
    ex.add_node(node)
    threading.Thread(target=ex.spin, daemon=True).start()
    rows: list[dict[str, Any]] = []
    pids = {name: p.pid for name, p in procs.items()}
    try:
        t_start = time.monotonic()
        while not diag and time.monotonic() - t_start < 120:  # the model loads
            time.sleep(0.2)
        if not diag:
            raise RuntimeError(f"policy_node never reported; logs in {work}")
        t0 = time.monotonic()
        end = t0 + minutes * 60.0
        next_report = t0 + report_s
        last_task = 0.0
        while time.monotonic() < end:
            time.sleep(0.1)
            now = time.monotonic()
            with lock:
                phase = diag.get("phase", "")
                idle_since = max([t for t, _ in actions[-1:]] + [t for t, _ in dones[-1:]] + [last_task])
            # episode over (diagnostics come once a second: 1.5 s of quiet, so a stale "done" is not acted on)
            if phase in ("idle", "done") and now - idle_since > 1.5:
                task_pub.publish(String(data=task.instruction))
                last_task = now
                with lock:
                    tasks.append(now)
            if now >= next_report or now >= end:
                rows.append(report(now - t0, pids, actions, dones, tasks, diag, frame_age_max, lock, rows))
                next_report += report_s
        task_pub.publish(String(data=""))  # no new query; the last answers get their step_done
        time.sleep(3.0)
        return summary(rows, actions, dones, tasks, frame_age_max, max_age, warmup_s, work, lock)
    finally:
        codes = bringup.stop(procs)
        if any(codes.values()):
            print(f"node exit codes {codes}; logs in {work}", file=sys.stderr)
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def report(t: float, pids: dict[str, int], actions: list, dones: list, tasks: list[float], diag: dict[str, str],
           ages: list[float], lock: threading.Lock, rows: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """One interval's figures (the loop latency of the steps answered since the previous report)."""
    since = rows[-1]["t_s"] if rows else 0.0
    with lock:
        waits = loop_waits(actions, dones, tasks)
        t_first = actions[0][0] if actions else 0.0
        recent = [wt for at, wt in waits if at - t_first >= since] if actions else []
        row = {
            "t_s": round(t, 1),
            "rss_mb": {name: round(rss_mb(pid), 1) for name, pid in pids.items()},
            "loop_ms": {q: pct_ms(recent, q) for q in (50, 95, 99)},
            "model_p50_ms": diag.get("model_p50_ms"),
            "model_p95_ms": diag.get("model_p95_ms"),
            "frames_received": int(diag.get("frames_received", 0)),
            "frames_used": int(diag.get("frames_used", 0)),
            "frame_age_max_ms": round(1000 * max(ages), 1) if ages else None,
            "actions": len(actions),
            "step_done": len(dones),
        }
    loop = row["loop_ms"]
    print(
        f"t={row['t_s']:7.1f} s  RSS "
        + " ".join(f"{n} {v:.0f} MB" for n, v in row["rss_mb"].items())
        + "  loop p50/p95/p99 "
        + "/".join("n/a" if loop[q] is None else f"{loop[q]:.0f}" for q in (50, 95, 99))
        + f" ms  model p50/p95 {row['model_p50_ms']}/{row['model_p95_ms']} ms  frames used/received "
        f"{row['frames_used']}/{row['frames_received']}  oldest frame used {row['frame_age_max_ms']} ms  "
        f"actions {row['actions']} step_done {row['step_done']}",
        flush=True,
    )
    return row


def loop_waits(
    actions: list[tuple[float, str]], dones: list[tuple[float, Any]], tasks: list[float]
) -> list[tuple[float, float]]:
    """(answer time, seconds since the step_done before it) for every answer that followed a step_done of the same
    episode (the first answer of an episode follows a task, and the soak's own wait before giving it)."""
    out = []
    for t, _ in actions:
        before = [d for d, _ in dones if d < t]
        if before and not any(before[-1] < k < t for k in tasks):
            out.append((t, t - before[-1]))
    return out


def summary(rows: list[dict[str, Any]], actions: list, dones: list, tasks: list[float], ages: list[float],
            max_age: float, warmup_s: float, work: Path, lock: threading.Lock) -> dict[str, Any]:  # fmt: skip
    with lock:
        waits = [wt for _, wt in loop_waits(actions, dones, tasks)]
        answered = [a for _, a in actions]
        reported = [d.step for _, d in dones]
    after = [r for r in rows if r["t_s"] >= warmup_s] or rows[-1:]
    growth = {n: round(after[-1]["rss_mb"][n] - after[0]["rss_mb"][n], 1) for n in after[0]["rss_mb"]}
    unanswered = len(answered) - len(reported)
    out = {
        "intervals": rows,
        "actions": len(answered),
        "step_done": len(reported),
        "actions_without_step_done": unanswered,
        "rss_growth_after_warmup_mb": growth,
        "loop_ms": {q: pct_ms(waits, q) for q in (50, 95, 99)},
        "frame_age_max_ms": round(1000 * max(ages), 1) if ages else None,
        "max_image_age_ms": 1000 * max_age,
        "logs": str(work),
    }
    out["ok"] = bool(
        answered
        and unanswered == 0
        and ages
        and max(ages) <= max_age
        and (len(rows) < 2 or all(g < RSS_GROWTH_MB for g in growth.values()))
    )
    loop = out["loop_ms"]
    print(
        f"summary: {out['actions']} actions, {out['step_done']} step_done ({unanswered} without); RSS growth after "
        f"{warmup_s:g} s: {growth} MB; loop p50/p95/p99 "
        + "/".join("n/a" if loop[q] is None else f"{loop[q]:.0f}" for q in (50, 95, 99))
        + f" ms; oldest frame used {out['frame_age_max_ms']} ms (max_image_age_s {max_age:g} s) -> "
        + ("OK" if out["ok"] else "FAILED"),
        flush=True,
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    ap.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz (default 30)")
    ap.add_argument("--size", default="640x480", help="camera image WxH (default 640x480)")
    ap.add_argument("--report-s", type=float, default=60.0, help="seconds between report lines (default 60)")
    ap.add_argument("--warmup-s", type=float, default=60.0, help="RSS growth is counted after this (default 60)")
    ap.add_argument("--json", help="write the figures here as JSON")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    out = run(a.minutes, a.rate, (w, h), a.report_s, a.warmup_s)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
