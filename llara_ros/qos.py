"""One named QoS per stream, defined once and used by every node (and by what talks to them).

- camera images and joint states: sensor data (best effort, keep last) — a late frame is worthless;
- the task: reliable + transient local, so a node that starts late still gets the current task;
- commands and results (action text, step_done, trajectories, gripper, estop): reliable, a few deep;
- visualization: reliable, keep last 1 (RViz shows the newest).
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

SENSOR = qos_profile_sensor_data
TASK = QoSProfile(
    depth=1,
    history=HistoryPolicy.KEEP_LAST,
    reliability=ReliabilityPolicy.RELIABLE,
    durability=DurabilityPolicy.TRANSIENT_LOCAL,
)
COMMAND = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
LATEST = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
