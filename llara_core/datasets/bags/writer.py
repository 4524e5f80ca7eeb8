"""Episode -> rosbag2 with standard message types: what a recorder on a robot produces, from known ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llara_core.datasets.bags.detections import detections_msg
from llara_core.datasets.bags.options import BagOptions, Storage, typestore
from llara_core.datasets.episodes import Episode
from llara_core.geometry import matrix_to_quaternion
from llara_core.images import encode_compressed


def _ns(t: float) -> int:
    return round(t * 1e9)


def write_episode_bag(
    episode: Episode,
    path: str | Path,
    storage: Storage = "mcap",
    options: BagOptions | None = None,
    image_format: Literal["raw", "png", "jpeg"] = "raw",
    ee_pose: bool = True,
    gripper_float: bool = False,
    receive_offset_s: float = 0.0,
    camera_clock_offset_s: float = 0.0,
) -> Path:
    """Write an episode as a rosbag2 (topic and frame names from ``options``).

    Joint states are written when the episode's states carry joint positions,
    detections when its frames carry object boxes; ``ee_pose=False`` leaves out
    the pose topic (the FK path must then be used to read it back);
    ``gripper_float=True`` writes the gripper as std_msgs/Float64 (1.0 closed).
    Two clocks, as real recordings have them: ``receive_offset_s`` is added to
    every receive time (a recorder on the wall clock while the robot stamps sim
    time), ``camera_clock_offset_s`` to the camera's header stamps (a camera on
    another clock than the arm).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    ro = receive_offset_s
    opt = options or BagOptions()
    topics, base, cam = opt.topics, opt.base_frame, opt.camera_frame
    ts = typestore()
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

    img_type = "sensor_msgs/msg/Image" if image_format == "raw" else "sensor_msgs/msg/CompressedImage"
    layout = [
        ("image", topics.image, img_type),
        ("info", topics.camera_info, "sensor_msgs/msg/CameraInfo"),
        ("grip", topics.gripper, "std_msgs/msg/Float64" if gripper_float else "std_msgs/msg/Bool"),
        ("task", topics.task, "std_msgs/msg/String"),
        ("tf", topics.tf_static, "tf2_msgs/msg/TFMessage"),
    ]
    if ee_pose:
        layout.append(("pose", topics.ee_pose, "geometry_msgs/msg/PoseStamped"))
    if episode.states and episode.states[0].joints:
        layout.append(("joints", topics.joint_states, "sensor_msgs/msg/JointState"))
    if any(f.objects for f in episode.frames):
        layout.append(("det", topics.detections, "vision_msgs/msg/Detection2DArray"))

    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    path = Path(path)
    with Writer(path, version=9, storage_plugin=plugin) as w:
        conns = {name: w.add_connection(topic, msgtype, typestore=ts) for name, topic, msgtype in layout}
        msgs: list[tuple[int, str, Any]] = []
        t0 = episode.frames[0].stamp
        cp = episode.camera_pose
        tf = T["geometry_msgs/msg/TransformStamped"](
            header=header(t0, base),
            child_frame_id=cam,
            transform=T["geometry_msgs/msg/Transform"](
                translation=T["geometry_msgs/msg/Vector3"](x=cp[0, 3], y=cp[1, 3], z=cp[2, 3]),
                rotation=pose(cp).orientation,
            ),
        )
        msgs.append((_ns(ro + t0), "tf", T["tf2_msgs/msg/TFMessage"](transforms=[tf])))
        msgs.append((_ns(ro + t0), "task", T["std_msgs/msg/String"](data=episode.instruction)))
        f = episode.camera.camera_info_fields()
        info = T["sensor_msgs/msg/CameraInfo"](
            header=header(t0, cam),
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
        W, H = episode.camera.width, episode.camera.height
        for fr in episode.frames:
            h, wd = fr.image.shape[:2]
            if image_format == "raw":
                img = T["sensor_msgs/msg/Image"](
                    header=header(fr.stamp + camera_clock_offset_s, cam),
                    height=h,
                    width=wd,
                    encoding="rgb8",
                    is_bigendian=0,
                    step=wd * 3,
                    data=np.ascontiguousarray(fr.image).reshape(-1),
                )
            else:
                data = np.frombuffer(encode_compressed(fr.image, image_format), dtype=np.uint8)
                img = T["sensor_msgs/msg/CompressedImage"](
                    header=header(fr.stamp + camera_clock_offset_s, cam), format=image_format, data=data
                )
            msgs.append((_ns(ro + fr.stamp), "image", img))
            msgs.append((_ns(ro + fr.stamp), "info", info))
            if fr.objects and "det" in conns:
                msgs.append(
                    (
                        _ns(ro + fr.stamp),
                        "det",
                        detections_msg(T, header(fr.stamp + camera_clock_offset_s, cam), fr.objects, W, H),
                    )
                )
        for st in episode.states:
            if ee_pose:
                stamped = T["geometry_msgs/msg/PoseStamped"](header=header(st.stamp, base), pose=pose(st.ee_pose))
                msgs.append((_ns(ro + st.stamp), "pose", stamped))
            if "joints" in conns and st.joints:
                names = list(st.joints)
                js = T["sensor_msgs/msg/JointState"](
                    header=header(st.stamp, base),
                    name=names,
                    position=np.array([st.joints[n] for n in names], dtype=np.float64),
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                )
                msgs.append((_ns(ro + st.stamp), "joints", js))
            grip = (
                T["std_msgs/msg/Float64"](data=float(st.gripper_closed))
                if gripper_float
                else T["std_msgs/msg/Bool"](data=bool(st.gripper_closed))
            )
            msgs.append((_ns(ro + st.stamp), "grip", grip))
        for t, name, msg in sorted(msgs, key=lambda m: m[0]):
            c = conns[name]
            w.write(c, t, ts.serialize_cdr(msg, c.msgtype))
    return path
