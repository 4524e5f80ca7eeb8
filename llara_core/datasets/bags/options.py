"""How an episode sits in a bag: topic names, frames, gripper signal, typestore — one configuration dataclass.

Every field is a key of ``bag:`` in ``config/conversion.yaml``, a
``--bag.<field>`` flag of ``llara convert-bags`` and a ``bag.<field>``
parameter of the ``convert_bags`` node (see :mod:`llara_core.config`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

from llara_core import topics
from llara_core.config import check_choices, setting
from llara_core.errors import LlaraError
from llara_core.geometry import BASE_FRAME, CAMERA_FRAME

Storage = Literal["mcap", "sqlite3"]
Distro = Literal["humble", "iron", "jazzy", "kilted"]
EPISODE_SIDECAR = "llara_episode.yaml"
BOXES_SIDECAR = "boxes.json"

# vision_msgs (4.x, Humble and later) is not in rosbags' typestores and has no PyPI wheel. Its definitions
# are registered here so that bags we write carry standard Detection2DArray messages; bags recorded on a
# robot carry their own definitions.
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\nvision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
}


class BagError(LlaraError, RuntimeError):
    """A bag cannot be turned into an episode; the message says why and what the bag holds."""


@dataclass(frozen=True)
class BagTopics:
    """Topic names of an episode bag (defaults: the topic contract, :mod:`llara_core.topics`)."""

    image: str = setting(topics.IMAGE.name, "camera frames: sensor_msgs/Image or CompressedImage")
    camera_info: str = setting(topics.CAMERA_INFO.name, "sensor_msgs/CameraInfo of the camera")
    ee_pose: str = setting(topics.EE_POSE.name, "geometry_msgs/PoseStamped of the end effector in the base frame")
    joint_states: str = setting(topics.JOINT_STATES.name, "sensor_msgs/JointState (FK through 'urdf' when no ee_pose)")
    gripper: str = setting(
        topics.GRIPPER_CLOSED.name, "std_msgs/Bool, Float32/64 (with gripper_threshold) or JointState"
    )
    task: str = setting(topics.TASK.name, "std_msgs/String: the instruction")
    tf_static: str = setting(topics.TF_STATIC.name, "tf2_msgs/TFMessage: base -> camera optical frame")
    detections: str = setting(
        topics.DETECTIONS.name, "vision_msgs/Detection2DArray: object boxes (D-inBC, auxiliary tasks)"
    )


@dataclass(frozen=True)
class BagOptions:
    """How to read an episode out of a bag (YAML ``bag:`` section of the conversion config)."""

    topics: BagTopics = field(default_factory=BagTopics)
    base_frame: str = setting(BASE_FRAME, "robot base frame: poses and the camera pose are expressed in it")
    camera_frame: str = setting(CAMERA_FRAME, "the camera's optical frame (z forward, x right, y down)")
    camera_pose: tuple[float, ...] | None = setting(
        None, "x y z qx qy qz qw of the optical frame in the base frame; overrides /tf_static", length=7
    )
    urdf: str | None = setting(
        None, "robot URDF for end-effector poses from joint_states (no ee_pose topic)", path=True
    )
    ee_frame: str = setting("tcp", "end-effector frame of the URDF whose pose the actions describe")
    gripper_joint: str | None = setting(None, "finger joint of joint_states that tells open from closed")
    gripper_threshold: float | None = setting(
        None, "a numeric gripper signal (finger position, Float) counts as closed below this value"
    )
    gripper_hysteresis: float = setting(0.0, "band around the threshold against chatter")
    gripper_closed_below: bool = setting(True, "false: larger values mean closed (e.g. a Robotiq position)")
    instruction: str | None = setting(None, "instruction for bags without a task topic or sidecar")
    settle_s: float = setting(
        0.3, "seconds after a release before the scene counts as settled (the next step's observation)"
    )
    distro: Distro = setting("kilted", "typestore for old bags that carry no message definitions")

    def __post_init__(self) -> None:
        check_choices(self)
        if self.gripper_hysteresis < 0 or self.settle_s < 0:
            raise ValueError("gripper_hysteresis and settle_s must be >= 0")


@functools.cache
def typestore(distro: str = "kilted") -> Any:
    """rosbags typestore of ``distro`` with vision_msgs registered (built once per process: ~9 ms each)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    ts = get_typestore(getattr(Stores, f"ROS2_{distro.upper()}"))
    types: dict[str, Any] = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    ts.register(types)
    return ts
