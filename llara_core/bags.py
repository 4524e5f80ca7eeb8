"""Episodes <-> rosbag2 files (mcap or sqlite3), with the pure-Python ``rosbags`` library.

No rclpy here: bags are read and written with ``rosbags``' typestores, so
conversion runs on machines without ROS, and reads bags recorded by Humble,
Jazzy or Kilted alike (the message definitions stored in the bag win).

Topics of an episode bag (all configurable with :class:`BagTopics`):

=================  ==================================  =========================================
topic              type                                 meaning
=================  ==================================  =========================================
image              sensor_msgs/msg/Image                RGB/BGR/mono camera frames
camera_info        sensor_msgs/msg/CameraInfo           intrinsics (first message is used)
ee_pose            geometry_msgs/msg/PoseStamped        end effector in the base frame
gripper            std_msgs/msg/Bool                    true = closed
task               std_msgs/msg/String                  the instruction (last message wins)
/tf_static         tf2_msgs/msg/TFMessage               base -> camera optical frame (optional)
=================  ==================================  =========================================

This module is the data path only; recording from live topics and the
``convert_bags`` node/CLI build on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llara_core.episodes import CameraFrame, Episode, RobotState
from llara_core.geometry import CameraModel, matrix_to_quaternion, pose_msg_to_matrix, pose_to_matrix
from llara_core.images import ImageEncodingError, decode, to_rgb

Storage = Literal["mcap", "sqlite3"]
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_color_optical_frame"


class BagError(RuntimeError):
    """A bag cannot be turned into an episode; the message says why and what the bag holds."""


@dataclass(frozen=True)
class BagTopics:
    image: str = "/camera/color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    ee_pose: str = "/ee_pose"
    gripper: str = "/gripper_closed"
    task: str = "/task"
    tf_static: str = "/tf_static"


def _typestore() -> Any:
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def _ns(t: float) -> int:
    return round(t * 1e9)


def write_episode_bag(
    episode: Episode, path: str | Path, storage: Storage = "mcap", topics: BagTopics = BagTopics()
) -> Path:
    """Write an episode as a rosbag2 with standard message types (what a recorder would produce)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    ts = _typestore()
    T = ts.types
    Time, Header = T["builtin_interfaces/msg/Time"], T["std_msgs/msg/Header"]

    def header(t: float, frame: str) -> Any:
        ns = _ns(t)
        return Header(stamp=Time(sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame)

    def pose(M: npt.NDArray[np.float64]) -> Any:
        q = matrix_to_quaternion(M[:3, :3])
        return T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=float(M[0, 3]), y=float(M[1, 3]), z=float(M[2, 3])),
            orientation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3]),
        )

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path = Path(path)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {
            name: w.add_connection(topic, msgtype, typestore=ts)
            for name, topic, msgtype in (
                ("image", topics.image, "sensor_msgs/msg/Image"),
                ("info", topics.camera_info, "sensor_msgs/msg/CameraInfo"),
                ("pose", topics.ee_pose, "geometry_msgs/msg/PoseStamped"),
                ("grip", topics.gripper, "std_msgs/msg/Bool"),
                ("task", topics.task, "std_msgs/msg/String"),
                ("tf", topics.tf_static, "tf2_msgs/msg/TFMessage"),
            )
        }
        msgs: list[tuple[int, str, Any]] = []
        t0 = episode.frames[0].stamp
        cp = episode.camera_pose
        tf = T["geometry_msgs/msg/TransformStamped"](
            header=header(t0, BASE_FRAME),
            child_frame_id=CAMERA_FRAME,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=cp[0, 3], y=cp[1, 3], z=cp[2, 3]),
                rotation=pose(cp).orientation,
            ),
        )
        msgs.append((_ns(t0), "tf", T["tf2_msgs/msg/TFMessage"](transforms=[tf])))
        msgs.append((_ns(t0), "task", T["std_msgs/msg/String"](data=episode.instruction)))
        f = episode.camera.camera_info_fields()
        info = T["sensor_msgs/msg/CameraInfo"](
            header=header(t0, CAMERA_FRAME),
            height=f["height"],
            width=f["width"],
            distortion_model=f["distortion_model"],
            d=np.asarray(f["d"], dtype=np.float64),
            k=np.asarray(f["k"], dtype=np.float64),
            r=np.asarray(f["r"], dtype=np.float64),
            p=np.asarray(f["p"], dtype=np.float64),
            binning_x=0,
            binning_y=0,
            roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False),
        )
        for fr in episode.frames:
            h, wd = fr.image.shape[:2]
            img = T["sensor_msgs/msg/Image"](
                header=header(fr.stamp, CAMERA_FRAME),
                height=h,
                width=wd,
                encoding="rgb8",
                is_bigendian=0,
                step=wd * 3,
                data=np.ascontiguousarray(fr.image).reshape(-1),
            )
            msgs.append((_ns(fr.stamp), "image", img))
            msgs.append((_ns(fr.stamp), "info", info))
        for st in episode.states:
            msgs.append(
                (
                    _ns(st.stamp),
                    "pose",
                    T["geometry_msgs/msg/PoseStamped"](header=header(st.stamp, BASE_FRAME), pose=pose(st.ee_pose)),
                )
            )
            msgs.append((_ns(st.stamp), "grip", T["std_msgs/msg/Bool"](data=bool(st.gripper_closed))))
        for t, name, msg in sorted(msgs, key=lambda m: m[0]):
            c = conns[name]
            w.write(c, t, ts.serialize_cdr(msg, c.msgtype))
    return path


def _stamp(msg: Any, fallback_ns: int) -> float:
    h = getattr(msg, "header", None)
    if h is not None and (h.stamp.sec or h.stamp.nanosec):
        return h.stamp.sec + h.stamp.nanosec * 1e-9
    return fallback_ns * 1e-9


def read_episode_bag(
    path: str | Path,
    topics: BagTopics = BagTopics(),
    camera_pose: npt.ArrayLike | None = None,
    instruction: str | None = None,
    episode_id: str | None = None,
) -> Episode:
    """Read one episode bag. ``camera_pose``/``instruction`` override what the bag holds.

    Raises :class:`BagError` for a missing topic (naming the bag's topics), a bag
    that cannot be opened, or data that does not form an episode.
    """
    from rosbags.highlevel import AnyReader

    path = Path(path)
    try:
        reader = AnyReader([path], default_typestore=_typestore())
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable/corrupt bags
        raise BagError(f"{path}: cannot open bag: {exc}") from exc
    try:
        available = sorted({c.topic for c in reader.connections})
        needed = {
            "image": topics.image,
            "camera_info": topics.camera_info,
            "ee_pose": topics.ee_pose,
            "gripper": topics.gripper,
        }
        missing = [f"{k} ({t})" for k, t in needed.items() if t not in available]
        if missing:
            raise BagError(f"{path}: missing topic(s) {', '.join(missing)}; the bag has {available}")
        wanted = {topics.image, topics.camera_info, topics.ee_pose, topics.gripper, topics.task, topics.tf_static}
        conns = [c for c in reader.connections if c.topic in wanted]
        frames: list[CameraFrame] = []
        poses: list[tuple[float, npt.NDArray[np.float64]]] = []
        grips: list[tuple[float, bool]] = []
        info = None
        task_text: str | None = None
        tf_pose = None
        truncated: str | None = None
        try:
            for conn, t_ns, raw in reader.messages(connections=conns):
                topic = conn.topic
                if topic == topics.camera_info and info is not None:
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                if topic == topics.image:
                    rgb = to_rgb(
                        decode(msg.data, msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian)),
                        msg.encoding,
                    )
                    frames.append(CameraFrame(rgb, _stamp(msg, t_ns)))
                elif topic == topics.camera_info:
                    info = msg
                elif topic == topics.ee_pose:
                    poses.append((_stamp(msg, t_ns), pose_msg_to_matrix(msg.pose)))
                elif topic == topics.gripper:
                    grips.append((t_ns * 1e-9, bool(msg.data)))
                elif topic == topics.task:
                    task_text = msg.data
                elif topic == topics.tf_static:
                    for tr in msg.transforms:
                        if tr.child_frame_id.lstrip("/") == CAMERA_FRAME:
                            q, v = tr.transform.rotation, tr.transform.translation
                            tf_pose = pose_to_matrix([v.x, v.y, v.z], [q.x, q.y, q.z, q.w])
        except ImageEncodingError as exc:
            raise BagError(f"{path}: {exc}") from exc
        except Exception as exc:  # truncated chunk, bad CDR, …: keep what is complete, and say so
            if not frames or not poses:
                raise BagError(f"{path}: unreadable before any complete data: {exc}") from exc
            truncated = f"reading stopped early: {exc}"
    finally:
        reader.close()

    if info is None or not frames or not poses or not grips:
        raise BagError(f"{path}: no messages on one of image/camera_info/ee_pose/gripper")
    cam_pose = camera_pose if camera_pose is not None else tf_pose
    if cam_pose is None:
        raise BagError(
            f"{path}: no camera pose: give one in the config or record {topics.tf_static} ({BASE_FRAME} -> {CAMERA_FRAME})"
        )
    text = instruction if instruction is not None else task_text
    if not text:
        raise BagError(f"{path}: no instruction: record {topics.task} or pass one")
    camera = CameraModel.from_camera_info(list(info.k), list(info.d), info.width, info.height, info.distortion_model)
    states = _align_states(poses, grips)
    frames.sort(key=lambda f: f.stamp)
    return Episode(
        episode_id or path.name,
        text,
        camera,
        np.asarray(cam_pose),
        frames,
        states,
        metadata={"source": str(path), **({"truncated": truncated} if truncated else {})},
    )


def _align_states(
    poses: Iterable[tuple[float, npt.NDArray[np.float64]]], grips: list[tuple[float, bool]]
) -> list[RobotState]:
    """One state per pose message, with the gripper value last received at or before it."""
    grips = sorted(grips)
    gt = np.array([g[0] for g in grips])
    out = []
    for t, M in sorted(poses, key=lambda p: p[0]):
        i = int(np.searchsorted(gt, t + 1e-9, side="right")) - 1
        out.append(RobotState(t, M, grips[max(i, 0)][1]))
    return out
