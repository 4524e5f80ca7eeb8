"""One rosbag2 episode -> :class:`~llara_core.episodes.Episode`, with ``rosbags`` (no ROS needed).

Images stay raw message bytes until a frame is used; the end-effector pose
comes from ``ee_pose`` or from ``joint_states`` through the URDF; the gripper
from a Bool, a number (threshold + hysteresis) or a finger joint; the camera
pose from ``/tf_static`` (any chain) or the configuration; object boxes from
detections or ``boxes.json``. An unfinished bag is recovered first
(:mod:`llara_core.bags.recovery`). Every refusal is a :class:`BagError` that
says what is missing and what the bag holds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.bags.detections import assign_boxes, boxes_from_detections, boxes_from_sidecar
from llara_core.bags.options import EPISODE_SIDECAR, BagError, BagOptions, typestore
from llara_core.bags.recovery import needs_recovery, recover_bag
from llara_core.bags.sidecars import read_sidecar
from llara_core.episodes import CameraFrame, Episode, align_states
from llara_core.geometry import CameraModel, chain_transform, pose_msg_to_matrix, pose_to_matrix
from llara_core.images import ImageEncodingError, decode, decode_compressed, to_rgb
from llara_core.kinematics import GripperFilter, KinematicsError, RobotKinematics


def _stamp(msg: Any, fallback_ns: int) -> float:
    h = getattr(msg, "header", None)
    if h is not None and (h.stamp.sec or h.stamp.nanosec):
        return float(h.stamp.sec + h.stamp.nanosec * 1e-9)
    return fallback_ns * 1e-9


def _image_decoder(msg: Any, msgtype: str) -> tuple[Callable[[], npt.NDArray[np.uint8]], tuple[int, int, int] | None]:
    """A closure that decodes this image message later, and its shape when the message tells it."""
    data = msg.data
    if msgtype.endswith("CompressedImage"):
        return (lambda: decode_compressed(data)), None
    h, w, step, enc, big = msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian)
    return (lambda: to_rgb(decode(data, h, w, step, enc, big), enc)), (h, w, 3)


def read_episode_bag(path: str | Path, options: BagOptions | None = None, episode_id: str | None = None) -> Episode:
    """Read one episode bag. Raises :class:`BagError` naming what is missing and what the bag holds."""
    from rosbags.highlevel import AnyReader

    opt = options or BagOptions()
    tp = opt.topics
    path = Path(path)
    recovered = None
    if needs_recovery(path):
        try:
            recovered = recover_bag(path, opt.distro)
        except BagError as exc:
            raise BagError(f"{path}: {exc}") from exc
    try:
        reader = AnyReader([path], default_typestore=typestore(opt.distro))
        reader.open()
    except Exception as exc:  # rosbags raises several types for unreadable/corrupt bags
        raise BagError(f"{path}: cannot open bag: {exc}") from exc
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        available = sorted(types)

        def need(what: str, topic: str) -> None:
            if topic not in types:
                raise BagError(f"{path}: missing topic {what} ({topic}); the bag has {available}")

        need("image", tp.image)
        need("camera_info", tp.camera_info)
        use_fk = tp.ee_pose not in types
        if use_fk and not (opt.urdf and tp.joint_states in types):
            raise BagError(
                f"{path}: missing topic ee_pose ({tp.ee_pose}); record it, or record {tp.joint_states} and give "
                f"'urdf' for forward kinematics; the bag has {available}"
            )
        grip_topic = tp.gripper if tp.gripper in types else None
        if grip_topic is None and opt.gripper_joint and tp.joint_states in types:
            grip_topic = tp.joint_states
        if grip_topic is None:
            raise BagError(
                f"{path}: missing topic gripper ({tp.gripper}); record it, or give 'gripper_joint' to read the "
                f"fingers from {tp.joint_states}; the bag has {available}"
            )
        grip_type = types[grip_topic]
        numeric = not grip_type.endswith("/Bool")
        if numeric and opt.gripper_threshold is None:
            raise BagError(f"{path}: gripper topic {grip_topic} is {grip_type}: set 'gripper_threshold'")
        if grip_type.endswith("/JointState") and not opt.gripper_joint:
            raise BagError(f"{path}: gripper topic {grip_topic} is a JointState: set 'gripper_joint'")
        fk = None
        if use_fk:
            try:
                fk = RobotKinematics(opt.urdf, base_link=opt.base_frame, tip_link=opt.ee_frame)
            except KinematicsError as exc:
                raise BagError(f"{path}: {exc}") from exc
        gfilter = GripperFilter(opt.gripper_threshold or 0.0, opt.gripper_hysteresis, opt.gripper_closed_below)

        pose_topic = tp.joint_states if use_fk else tp.ee_pose
        wanted = {tp.image, tp.camera_info, pose_topic, grip_topic, tp.task, tp.tf_static, tp.detections}
        conns = [c for c in reader.connections if c.topic in wanted]
        frames: list[CameraFrame] = []
        poses: list[tuple[float, npt.NDArray[np.float64]]] = []
        grips: list[tuple[float, bool]] = []
        detections: list[tuple[float, Any]] = []
        info: Any = None
        task_text: str | None = None
        tf_edges: list[tuple[str, str, npt.NDArray[np.float64]]] = []
        truncated: str | None = None
        try:
            for conn, t_ns, raw in reader.messages(connections=conns):
                topic = conn.topic
                if topic == tp.camera_info and info is not None:
                    continue
                msg: Any = reader.deserialize(raw, conn.msgtype)
                if topic == tp.image:
                    dec, shape = _image_decoder(msg, conn.msgtype)
                    frames.append(CameraFrame(None, _stamp(msg, t_ns), decode=dec, shape=shape or (0, 0, 3)))
                elif topic == tp.camera_info:
                    info = msg
                elif topic == tp.detections:
                    detections.append((_stamp(msg, t_ns), msg))
                elif topic == tp.task and msg.data.strip():  # an empty task clears it; the last one named wins
                    task_text = msg.data
                elif topic == tp.tf_static:
                    for tr in msg.transforms:
                        q, v = tr.transform.rotation, tr.transform.translation
                        T = pose_to_matrix([v.x, v.y, v.z], [q.x, q.y, q.z, q.w])
                        tf_edges.append((tr.header.frame_id, tr.child_frame_id, T))
                if topic == pose_topic:
                    if fk is not None:
                        poses.append((_stamp(msg, t_ns), fk.fk_named(list(msg.name), msg.position)))
                    else:
                        poses.append((_stamp(msg, t_ns), pose_msg_to_matrix(msg.pose)))
                if topic == grip_topic:
                    if grip_type.endswith("/JointState"):
                        names = list(msg.name)
                        if opt.gripper_joint not in names:
                            raise BagError(f"joint {opt.gripper_joint!r} not in {grip_topic} ({names})")
                        grips.append((_stamp(msg, t_ns), gfilter(float(msg.position[names.index(opt.gripper_joint)]))))
                    elif numeric:
                        grips.append((t_ns * 1e-9, gfilter(float(msg.data))))
                    else:
                        grips.append((t_ns * 1e-9, bool(msg.data)))
        except (ImageEncodingError, BagError, KinematicsError) as exc:
            raise BagError(f"{path}: {exc}") from exc
        except Exception as exc:  # truncated chunk, bad CDR, …: keep what is complete, and say so
            if not frames or not poses:
                raise BagError(f"{path}: unreadable before any complete data: {exc}") from exc
            truncated = f"reading stopped early: {exc}"
    finally:
        reader.close()

    if info is None or not frames or not poses or not grips:
        raise BagError(f"{path}: no messages on one of image/camera_info/end-effector pose/gripper")
    sidecar = read_sidecar(path)
    if opt.camera_pose is not None:
        cam_pose = pose_to_matrix(opt.camera_pose[:3], opt.camera_pose[3:])
    else:
        found = chain_transform(tf_edges, opt.base_frame, opt.camera_frame)
        if found is None:
            raise BagError(
                f"{path}: no camera pose: give 'camera_pose' or record {tp.tf_static} "
                f"({opt.base_frame} -> {opt.camera_frame})"
            )
        cam_pose = found
    text = opt.instruction or task_text or sidecar.get("instruction")
    if not text:
        raise BagError(f"{path}: no instruction: record {tp.task}, write it in {EPISODE_SIDECAR}, or pass one")
    camera = CameraModel.from_camera_info(
        list(info.k), list(info.d), info.width, info.height, info.distortion_model, list(info.r), list(info.p)
    )
    shape = (camera.height, camera.width, 3)
    for fr in frames:
        if fr.shape == (0, 0, 3):  # compressed: the CameraInfo tells the size; checked again when decoded
            fr.shape = shape
    frames.sort(key=lambda f: f.stamp)
    if detections:
        assign_boxes(frames, [(t, boxes_from_detections(m, camera.width, camera.height)) for t, m in detections])
    else:
        assign_boxes(frames, boxes_from_sidecar(path))
    meta: dict[str, Any] = {"source": str(path)}
    if truncated:
        meta["truncated"] = truncated
    if recovered is not None:
        meta["recovered_messages"] = recovered
    if "success" in sidecar:
        meta["operator_success"] = sidecar["success"]
    states = align_states(poses, grips)
    return Episode(
        episode_id or path.name, text, camera, cam_pose, frames, states, settle_s=opt.settle_s, metadata=meta
    )
