"""One rosbag2 episode -> :class:`~llara_core.datasets.episodes.Episode`, with ``rosbags`` (no ROS needed).

Images stay raw message bytes until a frame is used; the end-effector pose
comes from ``ee_pose`` or from ``joint_states`` through the URDF; the gripper
from a Bool, a number (threshold + hysteresis) or a finger joint; the camera
pose from ``/tf_static`` (any chain) or the configuration; object boxes from
detections or ``boxes.json``. An unfinished bag is recovered first
(:mod:`llara_core.datasets.bags.recovery`). Every refusal is a :class:`BagError` that
says what is missing and what the bag holds.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.datasets.bags.detections import assign_boxes, boxes_from_detections, boxes_from_sidecar
from llara_core.datasets.bags.options import EPISODE_SIDECAR, BagError, BagOptions, typestore
from llara_core.datasets.bags.recovery import needs_recovery, recover_bag
from llara_core.datasets.bags.sidecars import read_sidecar
from llara_core.datasets.episodes import CameraFrame, Episode, align_states
from llara_core.errors import one_line
from llara_core.geometry import CameraModel, chain_transform, pose_msg_to_matrix, pose_to_matrix
from llara_core.images import ImageEncodingError, decode, decode_compressed, to_rgb
from llara_core.planning.kinematics import KinematicsError, RobotKinematics

log = logging.getLogger(__name__)
PERMISSION_HINT = "make the folder and its files readable by this user, e.g. chmod -R a+rX"


class GripperFilter:
    """Numeric gripper signal (finger position, command value) -> closed/open with a threshold and hysteresis.

    Closed below ``threshold - hysteresis/2``, open again above
    ``threshold + hysteresis/2`` (``closed_below=False`` flips the direction), so
    a signal that hovers at the threshold does not chatter.
    """

    def __init__(self, threshold: float, hysteresis: float = 0.0, closed_below: bool = True) -> None:
        self.lo, self.hi = threshold - hysteresis / 2, threshold + hysteresis / 2
        self.closed_below = closed_below
        self.state: bool | None = None

    def __call__(self, value: float) -> bool:
        v = value if self.closed_below else -value
        lo, hi = (self.lo, self.hi) if self.closed_below else (-self.hi, -self.lo)
        if self.state is None:
            self.state = v < (lo + hi) / 2
        elif self.state and v > hi:
            self.state = False
        elif not self.state and v < lo:
            self.state = True
        return self.state


Stamp = tuple[float | None, float]  # (header stamp or None, receive time) of one message, seconds


def _stamp(msg: Any, receive_ns: int) -> Stamp:
    h = getattr(msg, "header", None)
    if h is not None and (h.stamp.sec or h.stamp.nanosec):
        return float(h.stamp.sec + h.stamp.nanosec * 1e-9), receive_ns * 1e-9
    return None, receive_ns * 1e-9


def one_time_base(streams: dict[str, list[Stamp]]) -> tuple[str, dict[str, list[float]]]:
    """Every stream of a bag on one clock: header stamps where every message has one, else receive times.

    Mixing them is how a recording silently loses its grasps: in simulation the
    robot stamps its headers with sim time while a recorder without
    ``use_sim_time`` receives on the wall clock, so a Bool gripper (no header)
    and the poses never meet. Streams whose time ranges still do not overlap
    (a camera and an arm on different clocks) are refused with what to set.
    """
    header = all(h is not None for ts in streams.values() for h, _ in ts)
    base = "header" if header else "receive"
    out = {name: [h if header and h is not None else r for h, r in ts] for name, ts in streams.items()}
    ranges = {name: (min(ts), max(ts)) for name, ts in out.items() if ts}
    lo = max((a for a, _ in ranges.values()), default=0.0)
    hi = min((b for _, b in ranges.values()), default=0.0)
    if lo > hi + 1.0:  # a second of slack: a slow first message is not a clock mismatch
        shown = ", ".join(f"{n} {a:.3f}–{b:.3f} s" for n, (a, b) in ranges.items())
        raise BagError(
            f"the streams' {base} times do not overlap ({shown}): they were stamped on different clocks; "
            "in simulation record with use_sim_time:=true (the robot's /clock), on a robot sync the clocks"
        )
    return base, out


def _image_decoder(msg: Any, msgtype: str) -> tuple[Callable[[], npt.NDArray[np.uint8]], tuple[int, int, int] | None]:
    """A closure that decodes this image message later, and its shape when the message tells it."""
    data = msg.data
    if msgtype.endswith("CompressedImage"):
        return (lambda: decode_compressed(data)), None
    h, w, step, enc, big = msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian)
    return (lambda: to_rgb(decode(data, h, w, step, enc, big), enc)), (h, w, 3)


def _definition_types(conn: Any) -> dict[str, Any]:
    """The types one connection's stored message definition declares (what AnyReader parses on open)."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    data, fmt = conn.msgdef.data, conn.msgdef.format
    if fmt == MessageDefinitionFormat.MSG:
        return dict(get_types_from_msg(data, conn.msgtype))
    types: dict[str, Any] = {}
    sep = "=" * 80 + "\n"
    for idl in data.split(sep)[1:] if data.startswith(f"{sep}IDL: ") else [data]:
        types.update(get_types_from_idl(idl.split("\n", 1)[1] if idl.startswith("IDL: ") else idl))
    return types


def _unparseable_connection(path: Path) -> str | None:
    """'<type> on <topic> (<why>)' for the first connection whose definition cannot be parsed, else None."""
    from rosbags.interfaces import MessageDefinitionFormat
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    try:
        with Reader(path) as raw:
            conns = list(raw.connections)
    except Exception:  # not even the metadata reads: the caller's message stands
        return None
    for conn in conns:
        if conn.msgdef.format == MessageDefinitionFormat.NONE:
            continue
        try:  # parse, register, resolve every field type (hashing does): what AnyReader.open does per bag
            store = get_typestore(Stores.EMPTY)
            store.register(_definition_types(conn))
            store.hash_rihs01(conn.msgtype)
        except Exception as exc:
            return f"{conn.msgtype} on {conn.topic} ({one_line(exc, 120)})"
    return None


def open_bag(path: Path, distro: str = "kilted") -> Any:
    """An open ``AnyReader`` on one bag, or BagError in one line: what failed, which connection, the topics.

    rosbags reports an unparseable message definition with the parser's whole
    output (~1000 characters) and without the topic; the full text goes to
    the debug log and the reason names the connection and lists the topics.
    """
    from rosbags.highlevel import AnyReader

    try:
        reader = AnyReader([path], default_typestore=typestore(distro))
        reader.open()
        return reader
    except Exception as exc:  # rosbags raises several types for unreadable/corrupt bags
        log.debug("cannot open %s: %r", path, exc)
        if not path.exists():
            raise BagError("cannot open bag: no such file or folder") from exc
        if isinstance(exc, PermissionError):
            raise BagError(f"cannot open bag: permission denied ({PERMISSION_HINT})") from exc
        bad = _unparseable_connection(path)
        if bad is not None:
            raise BagError(
                f"cannot open bag: the message definition of {bad} cannot be parsed; "
                f"the bag's topics: {list_topics(path)}"
            ) from exc
        hint = ""
        if (path / "metadata.yaml").is_file() and (any(path.glob("*.mcap")) or any(path.glob("*.db3"))):
            hint = (
                " (a file cut short or damaged: move metadata.yaml away and convert again to recover what is complete)"
            )
        raise BagError(f"cannot open bag: {one_line(exc)}{hint}") from exc


def list_topics(path: Path) -> list[str]:
    """The bag's topic names from its metadata alone (no definitions parsed); [] when even that fails."""
    from rosbags.rosbag2 import Reader

    try:
        with Reader(path) as raw:
            return sorted({c.topic for c in raw.connections})
    except Exception:
        return []


def camera_pose_hint(edges: Sequence[tuple[str, str]], opt: BagOptions, tf_topic: str) -> str:
    """Why no camera pose, and the setting that would give one, from the frames the bag's tf holds."""
    what = f"no camera pose: {tf_topic} has no chain {opt.base_frame} -> {opt.camera_frame}"
    if not edges:
        return f"{what} (no transforms recorded); set 'bag.camera_pose' (x y z qx qy qz qw) or record {tf_topic}"
    frames = sorted({f for e in edges for f in e})
    listing = f"; it has {', '.join(f'{a} -> {b}' for a, b in edges[:12])}"
    if opt.camera_frame not in frames:
        optical = [f for f in frames if "optical" in f] or frames
        return f"{what}{listing}; set 'bag.camera_frame' to the camera's optical frame (one of {optical})"
    dummy = np.eye(4)
    reach = [f for f in frames if f != opt.camera_frame and chain_transform(
        [(a, b, dummy) for a, b in edges], f, opt.camera_frame) is not None]  # fmt: skip
    if not reach:
        return f"{what}{listing}; set 'bag.camera_pose' (x y z qx qy qz qw)"
    best = next((f for f in reach if "base" in f or f.endswith("link0")), reach[0])
    return f"{what}{listing}; set 'bag.base_frame: {best}' (frames with a chain to the camera: {reach})"


def gripper_signal(topic: str, msgtype: str, opt: BagOptions) -> str:
    """How the gripper is read, in words (for the "no grasp" reason and inspect-bag)."""
    if msgtype.endswith("/JointState"):
        return f"finger joint {opt.gripper_joint} on {topic}"
    return f"{topic} ({msgtype.rsplit('/', 1)[-1]})"


def value_ranges(reader: Any, topic: str) -> dict[str, tuple[float, float]]:
    """Min/max of a numeric topic (key ``data``) or of each joint of a JointState topic; {} when unreadable.

    What a user needs to choose ``gripper_threshold`` / ``gripper_joint`` for a
    robot this project has never seen (``llara inspect-bag`` and the refusals).
    """
    out: dict[str, tuple[float, float]] = {}
    conns = [c for c in reader.connections if c.topic == topic]
    try:
        for c, _, raw in reader.messages(connections=conns) if conns else ():  # [] would read every message
            msg = reader.deserialize(raw, c.msgtype)
            pairs = zip(msg.name, msg.position, strict=False) if hasattr(msg, "position") else [("data", msg.data)]
            for name, v in pairs:
                lo, hi = out.get(name, (float(v), float(v)))
                out[name] = (min(lo, float(v)), max(hi, float(v)))
    except Exception:  # a type without data/position, a truncated tail: what was read so far
        log.debug("value ranges of %s stopped", topic, exc_info=True)
    return out


def _range_hint(reader: Any, topic: str, opt: BagOptions) -> str:
    """' (its values range a–b)' for a numeric gripper topic, so the user can pick a threshold."""
    rng = value_ranges(reader, topic).get("data")
    return f" (its values range {rng[0]:.4g}–{rng[1]:.4g})" if rng else ""


def read_episode_bag(path: str | Path, options: BagOptions | None = None, episode_id: str | None = None) -> Episode:
    """Read one episode bag. Raises :class:`BagError` naming what is missing and what the bag holds.

    Messages do not repeat the bag's path (callers report it once, beside the
    reason); they say what to set when a setting would fix the refusal.
    """
    opt = options or BagOptions()
    tp = opt.topics
    path = Path(path)
    if path.exists() and not os.access(path, os.R_OK | os.X_OK if path.is_dir() else os.R_OK):
        raise BagError(f"cannot open bag: permission denied ({PERMISSION_HINT})")
    recovered = None
    if needs_recovery(path):
        try:
            recovered = recover_bag(path, opt.distro)
        except BagError as exc:
            raise BagError(f"unfinished bag (no metadata.yaml) could not be recovered: {exc}") from exc
    reader = open_bag(path, opt.distro)
    try:
        types = {c.topic: c.msgtype for c in reader.connections}
        available = sorted(types)

        def need(what: str, topic: str) -> None:
            if topic not in types:
                raise BagError(f"missing topic {what} ({topic}); the bag has {available}")

        need("image", tp.image)
        need("camera_info", tp.camera_info)
        use_fk = tp.ee_pose not in types
        if use_fk and not (opt.urdf and tp.joint_states in types):
            raise BagError(
                f"missing topic ee_pose ({tp.ee_pose}); record it, or record {tp.joint_states} and give "
                f"'urdf' for forward kinematics; the bag has {available}"
            )
        grip_topic = tp.gripper if tp.gripper in types else None
        if grip_topic is None and opt.gripper_joint and tp.joint_states in types:
            grip_topic = tp.joint_states
        if grip_topic is None:
            raise BagError(
                f"missing topic gripper ({tp.gripper}); record it, or give 'gripper_joint' to read the "
                f"fingers from {tp.joint_states}; the bag has {available}"
            )
        grip_type = types[grip_topic]
        numeric = not grip_type.endswith("/Bool")
        if numeric and opt.gripper_threshold is None:
            raise BagError(
                f"gripper topic {grip_topic} is {grip_type}: set 'bag.gripper_threshold'{_range_hint(reader, grip_topic, opt)}"
            )
        if grip_type.endswith("/JointState") and not opt.gripper_joint:
            raise BagError(f"gripper topic {grip_topic} is a JointState: set 'bag.gripper_joint'")
        fk = None
        if use_fk:
            try:
                fk = RobotKinematics(opt.urdf, base_link=opt.base_frame, tip_link=opt.ee_frame)
            except KinematicsError as exc:
                raise BagError(str(exc)) from exc
        gfilter = GripperFilter(opt.gripper_threshold or 0.0, opt.gripper_hysteresis, opt.gripper_closed_below)

        pose_topic = tp.joint_states if use_fk else tp.ee_pose
        wanted = {tp.image, tp.camera_info, pose_topic, grip_topic, tp.task, tp.tf_static, tp.detections}
        conns = [c for c in reader.connections if c.topic in wanted]
        frames: list[CameraFrame] = []
        poses: list[npt.NDArray[np.float64]] = []
        grips: list[bool] = []
        raw_grip: list[float] = []  # numeric gripper values, for the "no grasp" hint
        detections: list[Any] = []
        frame_t: list[Stamp] = []
        pose_t: list[Stamp] = []
        grip_t: list[Stamp] = []
        det_t: list[Stamp] = []
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
                    frames.append(CameraFrame(None, 0.0, decode=dec, shape=shape or (0, 0, 3)))
                    frame_t.append(_stamp(msg, t_ns))
                elif topic == tp.camera_info:
                    info = msg
                elif topic == tp.detections:
                    detections.append(msg)
                    det_t.append(_stamp(msg, t_ns))
                elif topic == tp.task and msg.data.strip():  # an empty task clears it; the last one named wins
                    task_text = msg.data
                elif topic == tp.tf_static:
                    for tr in msg.transforms:
                        q, v = tr.transform.rotation, tr.transform.translation
                        T = pose_to_matrix([v.x, v.y, v.z], [q.x, q.y, q.z, q.w])
                        tf_edges.append((tr.header.frame_id, tr.child_frame_id, T))
                if topic == pose_topic:
                    pose_t.append(_stamp(msg, t_ns))
                    poses.append(fk.fk_named(list(msg.name), msg.position) if fk else pose_msg_to_matrix(msg.pose))
                if topic == grip_topic:
                    if grip_type.endswith("/JointState"):
                        names = list(msg.name)
                        if opt.gripper_joint not in names:
                            raise BagError(f"joint {opt.gripper_joint!r} not in {grip_topic} ({names})")
                        value = float(msg.position[names.index(opt.gripper_joint)])
                        raw_grip.append(value)
                        grips.append(gfilter(value))
                    elif numeric:
                        raw_grip.append(float(msg.data))
                        grips.append(gfilter(raw_grip[-1]))
                    else:
                        grips.append(bool(msg.data))
                    grip_t.append(_stamp(msg, t_ns))
        except (ImageEncodingError, BagError, KinematicsError) as exc:
            raise BagError(str(exc)) from exc
        except Exception as exc:  # truncated chunk, bad CDR, …: keep what is complete, and say so
            if not frames or not poses:
                raise BagError(f"unreadable before any complete data: {one_line(exc)}") from exc
            truncated = f"reading stopped early: {one_line(exc)}"
    finally:
        reader.close()

    empty = [n for n, got in (("image", frames), ("camera_info", info), ("end-effector pose", poses),
                              ("gripper", grips)) if not got]  # fmt: skip
    if empty:
        raise BagError(f"no messages on {', '.join(empty)} (the topics exist but carry nothing)")
    # grip_t/pose_t share a list when the gripper is a joint of the pose topic; lengths match their values
    base, times = one_time_base({"image": frame_t, "end-effector pose": pose_t, "gripper": grip_t,
                                 "detections": det_t})  # fmt: skip
    for fr, t in zip(frames, times["image"], strict=True):
        fr.stamp = t
    sidecar = read_sidecar(path)
    if opt.camera_pose is not None:
        cam_pose = pose_to_matrix(opt.camera_pose[:3], opt.camera_pose[3:])
    else:
        found = chain_transform(tf_edges, opt.base_frame, opt.camera_frame)
        if found is None:
            raise BagError(camera_pose_hint([(a, b) for a, b, _ in tf_edges], opt, tp.tf_static))
        cam_pose = found
    text = opt.instruction or task_text or sidecar.get("instruction")
    if not text:
        raise BagError(f"no instruction: record {tp.task}, write it in {EPISODE_SIDECAR}, or set 'bag.instruction'")
    camera = CameraModel.from_camera_info(
        list(info.k), list(info.d), info.width, info.height, info.distortion_model, list(info.r), list(info.p)
    )
    shape = (camera.height, camera.width, 3)
    for fr in frames:
        if fr.shape == (0, 0, 3):  # compressed: the CameraInfo tells the size; checked again when decoded
            fr.shape = shape
    frames.sort(key=lambda f: f.stamp)
    if detections:
        assign_boxes(frames, [(t, boxes_from_detections(m, camera.width, camera.height))
                              for t, m in zip(times["detections"], detections, strict=True)])  # fmt: skip
    else:
        assign_boxes(frames, boxes_from_sidecar(path))
    meta: dict[str, Any] = {"source": str(path), "time_base": base}
    if truncated:
        meta["truncated"] = truncated
    if recovered is not None:
        meta["recovered_messages"] = recovered
    meta["gripper_signal"] = gripper_signal(grip_topic, grip_type, opt)
    if raw_grip:
        meta["gripper_range"] = (min(raw_grip), max(raw_grip))
    if "success" in sidecar:
        meta["operator_success"] = sidecar["success"]
    states = align_states(zip(times["end-effector pose"], poses, strict=True),
                          list(zip(times["gripper"], grips, strict=True)))  # fmt: skip
    return Episode(
        episode_id or path.name, text, camera, cam_pose, frames, states, settle_s=opt.settle_s, metadata=meta
    )
