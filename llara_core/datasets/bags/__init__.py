"""Episodes <-> rosbag2 files (mcap or sqlite3), with the pure-Python ``rosbags`` library.

No rclpy here: bags are read and written with ``rosbags``' typestores, so
conversion runs on machines without ROS and reads bags recorded by Humble,
Jazzy or Kilted alike (the message definitions stored in the bag win; for old
bags without them, :attr:`BagOptions.distro` picks the typestore).

Topics of an episode bag (names configurable with :class:`BagTopics`; record
them with ``ros2 bag record -s mcap <topics>`` or the ``recorder_node``):

=================  ===========================================  ===============================================
topic              type                                          used for
=================  ===========================================  ===============================================
image              sensor_msgs/Image or CompressedImage          camera frames (decoded only when needed)
camera_info        sensor_msgs/CameraInfo                        intrinsics (first message)
ee_pose            geometry_msgs/PoseStamped                     end effector in the base frame …
joint_states       sensor_msgs/JointState                        … or FK of these through the URDF (Pinocchio)
gripper            std_msgs/Bool, Float32/64 or JointState        closed/open (threshold + hysteresis for numbers)
task               std_msgs/String                               the instruction (last message wins)
/tf_static         tf2_msgs/TFMessage                            base -> camera optical frame (any chain)
detections         vision_msgs/Detection2DArray                  object boxes for D-inBC and the auxiliary tasks
=================  ===========================================  ===============================================

Beside the topics, a bag folder may hold ``llara_episode.yaml`` (instruction,
operator success flag — what the recorder writes) and ``boxes.json`` (object
boxes per time stamp, normalized, when no detection topic exists).

The package, by concept: :mod:`~llara_core.datasets.bags.options` (topics, frames,
typestore), :mod:`~llara_core.datasets.bags.writer`, :mod:`~llara_core.datasets.bags.reader`,
:mod:`~llara_core.datasets.bags.recovery` (unfinished bags), :mod:`~llara_core.datasets.bags.sidecars`,
:mod:`~llara_core.datasets.bags.detections` (object boxes). The names below stay
importable from ``llara_core.datasets.bags``.
"""

from llara_core.datasets.bags.detections import assign_boxes, boxes_from_detections, boxes_from_sidecar
from llara_core.datasets.bags.options import (
    BOXES_SIDECAR,
    EPISODE_SIDECAR,
    VISION_MSGS,
    BagError,
    BagOptions,
    BagTopics,
    Storage,
    typestore,
)
from llara_core.datasets.bags.reader import GripperFilter, read_episode_bag
from llara_core.datasets.bags.recovery import needs_recovery, recover_bag
from llara_core.datasets.bags.sidecars import read_sidecar, write_sidecar
from llara_core.datasets.bags.writer import write_episode_bag
from llara_core.datasets.episodes import align_states
from llara_core.geometry import BASE_FRAME, CAMERA_FRAME, chain_transform, quaternion_pose

__all__ = [
    "BASE_FRAME",
    "BOXES_SIDECAR",
    "CAMERA_FRAME",
    "EPISODE_SIDECAR",
    "VISION_MSGS",
    "BagError",
    "BagOptions",
    "BagTopics",
    "GripperFilter",
    "Storage",
    "align_states",
    "assign_boxes",
    "boxes_from_detections",
    "boxes_from_sidecar",
    "chain_transform",
    "needs_recovery",
    "quaternion_pose",
    "read_episode_bag",
    "read_sidecar",
    "recover_bag",
    "typestore",
    "write_episode_bag",
    "write_sidecar",
]
