"""A second ROS graph for the demo-isolation test: it disturbs its own domain and counts what reaches it.

    python test/dds_probe.py   (ROS_DOMAIN_ID from the environment; stops on SIGINT, prints JSON counts)

Publishes what would wreck a demo that shared its graph — an estop, a task, an action text — and listens on
every stream the demo's nodes publish. It prints ``alive`` once it hears its own /probe messages (proof that a
silent listener is listening), and on SIGINT one JSON line: messages received per topic.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections import Counter

import rclpy
from rclpy.executors import SingleThreadedExecutor

from llara_core import topics
from llara_ros.topics import publisher, subscription

LISTEN = (topics.IMAGE, topics.CAMERA_INFO, topics.JOINT_STATES, topics.EE_POSE, topics.JOINT_TRAJECTORY,
          topics.GRIPPER_COMMAND, topics.STEP_DONE, topics.EPISODE, topics.CLOCK, topics.ANNOTATED_IMAGE,
          topics.GOALS, topics.MARKERS)  # fmt: skip
PROBE = topics.Stream("/llara_probe", "std_msgs/msg/String", "command")


def main() -> int:
    from std_msgs.msg import Bool, String

    rclpy.init()
    node = rclpy.create_node("llara_dds_probe")
    counts: Counter[str] = Counter()
    alive = threading.Event()

    def heard(name: str):
        def cb(_msg: object) -> None:
            counts[name] += 1
            if name == PROBE.name and not alive.is_set():
                alive.set()
                print("alive", flush=True)

        return cb

    for s in (*LISTEN, PROBE):
        subscription(node, s, heard(s.name))
    probe, estop = publisher(node, PROBE), publisher(node, topics.ESTOP)
    task, action = publisher(node, topics.TASK), publisher(node, topics.ACTION_TEXT)
    task.publish(String(data="disturbance: put every block on the floor"))

    def disturb() -> None:
        probe.publish(String(data="probe"))
        estop.publish(Bool(data=True))
        action.publish(String(data="Step 1: Pick up the object at <b>(0.500, 0.500)</b>, rotate <r>[0]</r> degrees, "
                                   "and drop it at <b>(0.300, 0.300)</b>."))  # fmt: skip

    node.create_timer(0.2, disturb)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=ex.spin, daemon=True).start()
    stop.wait()
    print(json.dumps(dict(counts)), flush=True)
    ex.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
