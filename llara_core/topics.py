"""The topic contract: every stream between the nodes, the recorder and the bags, named once (ROS-free).

Each :class:`Stream` has its default name, its message type and its QoS class;
``llara_ros.topics`` turns them into rclpy publishers and subscriptions, the
bag options (:class:`llara_core.datasets.bags.BagTopics`) take their default names from
here, and the recorder's default topic list too — so a renamed stream changes
everywhere at once. Every default is an absolute name (remap with
``-r /camera/color/image_raw:=/your/camera``).

QoS classes: ``sensor`` (best effort, keep last: a late frame is worthless),
``latched`` (reliable + transient local, depth 1: a node that starts late still
gets the current task or description), ``command`` (reliable, a few deep: action
text, step_done, trajectories, estop) and ``latest`` (reliable, keep last 1:
visualization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QosClass = Literal["sensor", "latched", "command", "latest"]


@dataclass(frozen=True)
class Stream:
    name: str
    msgtype: str
    qos: QosClass


# the robot: camera, arm, gripper (the bag contract: what the recorder records and convert_bags reads)
IMAGE = Stream("/camera/color/image_raw", "sensor_msgs/msg/Image", "sensor")
COMPRESSED_IMAGE = Stream("/camera/color/image_raw/compressed", "sensor_msgs/msg/CompressedImage", "sensor")
CAMERA_INFO = Stream("/camera/color/camera_info", "sensor_msgs/msg/CameraInfo", "sensor")
DEPTH = Stream("/camera/aligned_depth_to_color/image_raw", "sensor_msgs/msg/Image", "sensor")
JOINT_STATES = Stream("/joint_states", "sensor_msgs/msg/JointState", "sensor")
EE_POSE = Stream("/ee_pose", "geometry_msgs/msg/PoseStamped", "sensor")
GRIPPER_CLOSED = Stream("/gripper_closed", "std_msgs/msg/Bool", "sensor")
TF_STATIC = Stream("/tf_static", "tf2_msgs/msg/TFMessage", "latched")
DETECTIONS = Stream("/detections", "vision_msgs/msg/Detection2DArray", "sensor")
# the simulator's object boxes as JSON (llara_core.datasets.bags.detections.objects_json): a plain venv has no vision_msgs
# typesupport, so the recorder writes each one into the bag as a DETECTIONS message (the type a workspace records)
OBJECTS = Stream("/llara/objects", "std_msgs/msg/String", "sensor")
ROBOT_DESCRIPTION = Stream("/robot_description", "std_msgs/msg/String", "latched")
CLOCK = Stream("/clock", "rosgraph_msgs/msg/Clock", "sensor")
# the loop: task -> policy -> action text -> action node -> step_done
TASK = Stream("/task", "std_msgs/msg/String", "latched")
ACTION_TEXT = Stream("/action_text", "std_msgs/msg/String", "command")
STEP_DONE = Stream("/step_done", "std_msgs/msg/String", "command")
ESTOP = Stream("/estop", "std_msgs/msg/Bool", "command")
EPISODE = Stream("/episode", "std_msgs/msg/String", "latched")
# commands to the arm (joint_trajectory executor; <controller> from the action node's parameters)
JOINT_TRAJECTORY = Stream("/joint_trajectory_controller/joint_trajectory", "trajectory_msgs/msg/JointTrajectory",
                          "command")  # fmt: skip
GRIPPER_COMMAND = Stream("/gripper_controller/commands", "std_msgs/msg/Float64MultiArray", "command")
# what people look at
GOALS = Stream("/goals", "geometry_msgs/msg/PoseArray", "latest")
MARKERS = Stream("/markers", "visualization_msgs/msg/MarkerArray", "latest")
ANNOTATED_IMAGE = Stream("/annotated_image", "sensor_msgs/msg/Image", "latest")
DIAGNOSTICS = Stream("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", "command")


def trajectory_topic(controller: str) -> str:
    """ros2_control's joint_trajectory_controller topic of ``controller``."""
    return f"/{controller.strip('/')}/joint_trajectory"
