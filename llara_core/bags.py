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

A recorder that was killed leaves a bag without ``metadata.yaml`` and, for
mcap, without a summary: :func:`recover_bag` rewrites what is complete into a
readable bag, and :func:`read_episode_bag` does it on the fly.
"""

from __future__ import annotations

import functools
import json
import shutil
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llara_core.episodes import CameraFrame, Episode, ObjectBox, RobotState
from llara_core.geometry import CameraModel, invert_transform, matrix_to_quaternion, pose_msg_to_matrix, pose_to_matrix
from llara_core.images import ImageEncodingError, decode, decode_compressed, encode_compressed, to_rgb

Storage = Literal["mcap", "sqlite3"]
BASE_FRAME = "base_link"
CAMERA_FRAME = "camera_color_optical_frame"
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


class BagError(RuntimeError):
    """A bag cannot be turned into an episode; the message says why and what the bag holds."""


@dataclass(frozen=True)
class BagTopics:
    image: str = "/camera/color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    ee_pose: str = "/ee_pose"
    joint_states: str = "/joint_states"
    gripper: str = "/gripper_closed"
    task: str = "/task"
    tf_static: str = "/tf_static"
    detections: str = "/detections"


@dataclass(frozen=True)
class BagOptions:
    """How to read an episode out of a bag. Every field has a YAML key of the same name (see convert.py).

    ``camera_pose`` (x, y, z, qx, qy, qz, qw of the optical frame in the base
    frame) overrides /tf_static. ``urdf`` + ``ee_frame`` turn joint_states into
    end-effector poses when the bag has no ``ee_pose`` topic. For a numeric
    gripper signal (Float or a JointState finger joint ``gripper_joint``), the
    gripper counts as closed below ``gripper_threshold - gripper_hysteresis/2``
    and open again above ``gripper_threshold + gripper_hysteresis/2``
    (``gripper_closed_below: false`` flips the direction).
    """

    topics: BagTopics = field(default_factory=BagTopics)
    base_frame: str = BASE_FRAME
    camera_frame: str = CAMERA_FRAME
    camera_pose: tuple[float, ...] | None = None
    urdf: str | None = None
    ee_frame: str = "tcp"
    gripper_joint: str | None = None
    gripper_threshold: float | None = None
    gripper_hysteresis: float = 0.0
    gripper_closed_below: bool = True
    instruction: str | None = None
    distro: str = "kilted"

    def __post_init__(self) -> None:
        if self.camera_pose is not None and len(self.camera_pose) != 7:
            raise ValueError("camera_pose must be 7 numbers: x y z qx qy qz qw (optical frame in the base frame)")
        if self.gripper_hysteresis < 0:
            raise ValueError("gripper_hysteresis must be >= 0")
        if self.distro not in ("humble", "iron", "jazzy", "kilted"):
            raise ValueError(f"distro {self.distro!r}: choose humble, iron, jazzy or kilted")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BagOptions:
        """Options from a (YAML) mapping; unknown keys are an error that lists the known ones."""
        d = dict(d)
        topics = d.pop("topics", None) or {}
        known = {f.name for f in fields(cls)} - {"topics"}
        bad = sorted(set(d) - known)
        tbad = sorted(set(topics) - {f.name for f in fields(BagTopics)})
        if bad or tbad:
            raise ValueError(
                f"unknown option(s) {bad + [f'topics.{t}' for t in tbad]}; options: {sorted(known)}, "
                f"topics: {[f.name for f in fields(BagTopics)]}"
            )
        if d.get("camera_pose") is not None:
            d["camera_pose"] = tuple(float(v) for v in d["camera_pose"])
        return cls(topics=BagTopics(**topics), **d)


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


def _ns(t: float) -> int:
    return round(t * 1e9)


# -- writing -------------------------------------------------------------------------------------
def write_episode_bag(
    episode: Episode,
    path: str | Path,
    storage: Storage = "mcap",
    topics: BagTopics = BagTopics(),
    image_format: Literal["raw", "png", "jpeg"] = "raw",
    ee_pose: bool = True,
    gripper_float: bool = False,
) -> Path:
    """Write an episode as a rosbag2 with standard message types (what a recorder on a robot produces).

    Joint states are written when the episode's states carry joint positions,
    detections when its frames carry object boxes; ``ee_pose=False`` leaves out
    the pose topic (the FK path must then be used to read it back);
    ``gripper_float=True`` writes the gripper as std_msgs/Float64 (1.0 closed).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

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
        W, H = episode.camera.width, episode.camera.height
        for fr in episode.frames:
            h, wd = fr.image.shape[:2]
            if image_format == "raw":
                img = T["sensor_msgs/msg/Image"](
                    header=header(fr.stamp, CAMERA_FRAME),
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
                    header=header(fr.stamp, CAMERA_FRAME), format=image_format, data=data
                )
            msgs.append((_ns(fr.stamp), "image", img))
            msgs.append((_ns(fr.stamp), "info", info))
            if fr.objects and "det" in conns:
                msgs.append(
                    (_ns(fr.stamp), "det", _detections_msg(T, header(fr.stamp, CAMERA_FRAME), fr.objects, W, H))
                )
        for st in episode.states:
            if ee_pose:
                msgs.append(
                    (
                        _ns(st.stamp),
                        "pose",
                        T["geometry_msgs/msg/PoseStamped"](header=header(st.stamp, BASE_FRAME), pose=pose(st.ee_pose)),
                    )
                )
            if "joints" in conns and st.joints:
                names = list(st.joints)
                js = T["sensor_msgs/msg/JointState"](
                    header=header(st.stamp, BASE_FRAME),
                    name=names,
                    position=np.array([st.joints[n] for n in names], dtype=np.float64),
                    velocity=np.zeros(0),
                    effort=np.zeros(0),
                )
                msgs.append((_ns(st.stamp), "joints", js))
            grip = (
                T["std_msgs/msg/Float64"](data=float(st.gripper_closed))
                if gripper_float
                else T["std_msgs/msg/Bool"](data=bool(st.gripper_closed))
            )
            msgs.append((_ns(st.stamp), "grip", grip))
        for t, name, msg in sorted(msgs, key=lambda m: m[0]):
            c = conns[name]
            w.write(c, t, ts.serialize_cdr(msg, c.msgtype))
    return path


def _detections_msg(T: Any, header: Any, boxes: list[ObjectBox], W: int, H: int) -> Any:
    """Normalized boxes -> vision_msgs/Detection2DArray in pixels (centers at integers, like the camera)."""
    dets = []
    for b in boxes:
        hyp = T["vision_msgs/msg/ObjectHypothesisWithPose"](
            hypothesis=T["vision_msgs/msg/ObjectHypothesis"](class_id=b.name, score=1.0),
            pose=T["geometry_msgs/msg/PoseWithCovariance"](
                pose=T["geometry_msgs/msg/Pose"](
                    position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                    orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
                ),
                covariance=np.zeros(36),
            ),
        )
        bbox = T["vision_msgs/msg/BoundingBox2D"](
            center=T["vision_msgs/msg/Pose2D"](
                position=T["vision_msgs/msg/Point2D"](x=b.cx * W - 0.5, y=b.cy * H - 0.5), theta=0.0
            ),
            size_x=b.w * W,
            size_y=b.h * H,
        )
        dets.append(T["vision_msgs/msg/Detection2D"](header=header, results=[hyp], bbox=bbox, id=b.name))
    return T["vision_msgs/msg/Detection2DArray"](header=header, detections=dets)


def write_sidecar(bag: str | Path, instruction: str | None, success: bool | None, **extra: Any) -> Path:
    """Write ``llara_episode.yaml`` (instruction, operator success flag, anything else) atomically."""
    import yaml

    from llara_core.conversations import atomic_write_bytes

    path = Path(bag) / EPISODE_SIDECAR
    data = {"instruction": instruction, "success": success, **extra}
    atomic_write_bytes(path, yaml.safe_dump(data, sort_keys=False).encode())
    return path


def read_sidecar(bag: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(bag) / EPISODE_SIDECAR
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise BagError(f"{path}: expected a mapping")
    return data


# -- recovery of unfinished bags -----------------------------------------------------------------
def needs_recovery(bag: Path) -> bool:
    """True for a bag folder without metadata.yaml (a recorder that never closed it)."""
    return (
        bag.is_dir() and not (bag / "metadata.yaml").is_file() and (any(bag.glob("*.mcap")) or any(bag.glob("*.db3")))
    )


def _raw_from_mcap(files: list[Path]) -> Iterable[tuple[str, str, str | None, int, bytes]]:
    """(topic, msgtype, msgdef, log_time, data) of every complete message of possibly truncated mcap files."""
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    for f in files:
        schemas: dict[int, Schema] = {}
        channels: dict[int, Channel] = {}
        with f.open("rb") as fh:
            try:
                for rec in StreamReader(fh, emit_chunks=False).records:
                    if isinstance(rec, Schema):
                        schemas[rec.id] = rec
                    elif isinstance(rec, Channel):
                        channels[rec.id] = rec
                    elif isinstance(rec, Message) and rec.channel_id in channels:
                        ch = channels[rec.channel_id]
                        sc = schemas.get(ch.schema_id)
                        msgdef = sc.data.decode() if sc and sc.encoding == "ros2msg" else None
                        yield ch.topic, sc.name if sc else "", msgdef, rec.log_time, rec.data
            except Exception:  # the truncated tail: everything before it was yielded
                return


def _raw_from_sqlite(files: list[Path]) -> Iterable[tuple[str, str, str | None, int, bytes]]:
    for f in files:
        con = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        try:
            topics = {r[0]: (r[1], r[2]) for r in con.execute("SELECT id, name, type FROM topics")}
            defs: dict[str, str] = {}
            try:
                defs = {
                    r[0]: r[1]
                    for r in con.execute("SELECT topic_type, encoded_message_definition FROM message_definitions")
                }
            except sqlite3.DatabaseError:
                pass
            for tid, t_ns, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp"):
                name, mtype = topics[tid]
                yield name, mtype, defs.get(mtype) or None, t_ns, bytes(data)
        finally:
            con.close()


def recover_bag(bag: str | Path, distro: str = "kilted") -> int:
    """Rewrite an unfinished bag (no metadata.yaml, truncated mcap) into a readable one, in place.

    Keeps every complete message; the originals move to ``<bag>/unfinished/``
    so nothing is lost. Returns the number of messages recovered.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer

    bag = Path(bag)
    mcaps, dbs = sorted(bag.glob("*.mcap")), sorted(bag.glob("*.db3"))
    if not mcaps and not dbs:
        raise BagError(f"{bag}: no .mcap or .db3 file to recover")
    raw = list(_raw_from_mcap(mcaps) if mcaps else _raw_from_sqlite(dbs))
    if not raw:
        raise BagError(f"{bag}: unfinished bag with no complete message")
    ts = typestore(distro)
    tmp = Path(tempfile.mkdtemp(dir=bag.parent, prefix=f".{bag.name}.recover."))
    try:
        out = tmp / bag.name
        with Writer(out, version=9, storage_plugin=StoragePlugin.MCAP if mcaps else StoragePlugin.SQLITE3) as w:
            conns: dict[str, Any] = {}
            for topic, mtype, msgdef, t_ns, data in sorted(raw, key=lambda r: r[3]):
                if topic not in conns:
                    if mtype in ts.types:
                        conns[topic] = w.add_connection(topic, mtype, typestore=ts)
                    elif msgdef:
                        conns[topic] = w.add_connection(topic, mtype, msgdef=msgdef, rihs01="")
                    else:
                        raise BagError(f"{bag}: no definition for {mtype} on {topic}; cannot recover")
                w.write(conns[topic], t_ns, data)
        keep = bag / "unfinished"
        keep.mkdir(exist_ok=True)
        for f in (*mcaps, *dbs, *bag.glob("*.db3-*")):
            f.rename(keep / f.name)
        for f in out.iterdir():
            f.rename(bag / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(raw)


# -- reading -------------------------------------------------------------------------------------
def _stamp(msg: Any, fallback_ns: int) -> float:
    h = getattr(msg, "header", None)
    if h is not None and (h.stamp.sec or h.stamp.nanosec):
        return h.stamp.sec + h.stamp.nanosec * 1e-9
    return fallback_ns * 1e-9


def chain_transform(
    edges: list[tuple[str, str, npt.NDArray[np.float64]]], parent: str, child: str
) -> npt.NDArray[np.float64] | None:
    """parent_T_child through a tree of (parent, child, parent_T_child) transforms, walked in either direction."""
    graph: dict[str, list[tuple[str, npt.NDArray[np.float64]]]] = {}
    for p, c, T in edges:
        graph.setdefault(p.lstrip("/"), []).append((c.lstrip("/"), T))
        graph.setdefault(c.lstrip("/"), []).append((p.lstrip("/"), invert_transform(T)))
    todo: deque[tuple[str, npt.NDArray[np.float64]]] = deque([(parent, np.eye(4))])
    seen = {parent}
    while todo:
        frame, T = todo.popleft()
        if frame == child:
            return T
        for nxt, E in graph.get(frame, []):
            if nxt not in seen:
                seen.add(nxt)
                todo.append((nxt, T @ E))
    return None


class GripperFilter:
    """Numeric gripper signal -> closed/open with a threshold and hysteresis (no chatter at the threshold)."""

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


class _FK:
    """End-effector poses from JointState through the URDF (Pinocchio)."""

    def __init__(self, urdf: str, base: str, ee: str) -> None:
        import pinocchio as pin

        self.pin = pin
        self.model = pin.buildModelFromUrdf(urdf)
        self.data = self.model.createData()
        for fr in (base, ee):
            if not self.model.existFrame(fr):
                raise BagError(f"frame {fr!r} is not in {urdf}")
        self.base, self.ee = self.model.getFrameId(base), self.model.getFrameId(ee)
        # joints that move the end effector or the base frame: all must be in the JointState messages
        needed: set[str] = set()
        for fid in (self.base, self.ee):
            j = self.model.frames[fid].parentJoint
            while j > 0:
                needed.add(self.model.names[j])
                j = self.model.parents[j]
        self.needed = needed
        self.idx = {self.model.names[j]: self.model.joints[j].idx_q for j in range(1, self.model.njoints)}
        self.q0 = pin.neutral(self.model)

    def __call__(self, names: list[str], positions: Iterable[float]) -> npt.NDArray[np.float64]:
        missing = self.needed - set(names)
        if missing:
            raise BagError(f"joint_states lacks joints {sorted(missing)} needed for forward kinematics")
        q = self.q0.copy()
        for n, v in zip(names, positions, strict=False):
            i = self.idx.get(n)
            if i is not None:
                q[i] = v
        self.pin.framesForwardKinematics(self.model, self.data, q)
        return np.array((self.data.oMf[self.base].inverse() * self.data.oMf[self.ee]).homogeneous)


def _boxes_from_detections(msg: Any, W: int, H: int) -> list[ObjectBox]:
    out = []
    for d in msg.detections:
        name = d.results[0].hypothesis.class_id if d.results else d.id
        c = d.bbox.center
        pos = getattr(c, "position", c)  # vision_msgs 4.x has center.position, 3.x center.x/y
        x0, x1 = (pos.x + 0.5 - d.bbox.size_x / 2) / W, (pos.x + 0.5 + d.bbox.size_x / 2) / W
        y0, y1 = (pos.y + 0.5 - d.bbox.size_y / 2) / H, (pos.y + 0.5 + d.bbox.size_y / 2) / H
        out.append(ObjectBox.from_corners(str(name), x0, y0, x1, y1))
    return sorted(out, key=lambda b: b.name)


def _boxes_from_sidecar(bag: Path) -> list[tuple[float, list[ObjectBox]]]:
    path = bag / BOXES_SIDECAR
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        return sorted(
            (float(fr["stamp"]), [ObjectBox(o["name"], o["cx"], o["cy"], o["w"], o["h"]) for o in fr["objects"]])
            for fr in data["frames"]
        )
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise BagError(
            f"{path}: not a boxes file ({exc}); expected {{'frames': [{{'stamp', 'objects': [...]}}]}}"
        ) from exc


def _assign_boxes(frames: list[CameraFrame], boxes: list[tuple[float, list[ObjectBox]]], tol: float = 0.5) -> None:
    """Give each frame the latest boxes stamped at or before it (within ``tol`` s)."""
    if not boxes:
        return
    stamps = np.array([b[0] for b in boxes])
    for fr in frames:
        i = int(np.searchsorted(stamps, fr.stamp + 1e-6, side="right")) - 1
        if i >= 0 and fr.stamp - stamps[i] <= tol:
            fr.objects = boxes[i][1]


def _image_decoder(msg: Any, msgtype: str) -> tuple[Callable[[], npt.NDArray[np.uint8]], tuple[int, int, int] | None]:
    """A closure that decodes this image message later, and its shape when the message tells it."""
    data = msg.data
    if msgtype.endswith("CompressedImage"):
        return (lambda: decode_compressed(data)), None
    h, w, step, enc, big = msg.height, msg.width, msg.step, msg.encoding, bool(msg.is_bigendian)
    return (lambda: to_rgb(decode(data, h, w, step, enc, big), enc)), (h, w, 3)


def read_episode_bag(path: str | Path, options: BagOptions | None = None, episode_id: str | None = None) -> Episode:
    """Read one episode bag. Raises :class:`BagError` naming what is missing and what the bag holds.

    Images are kept as raw message bytes and decoded only when a frame is used.
    An unfinished bag (killed recorder) is recovered first (see :func:`recover_bag`).
    """
    from rosbags.highlevel import AnyReader

    opt = options or BagOptions()
    tp = opt.topics
    path = Path(path)
    recovered = None
    if needs_recovery(path):
        recovered = recover_bag(path, opt.distro)
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
        fk = _FK(opt.urdf, opt.base_frame, opt.ee_frame) if use_fk else None  # type: ignore[arg-type]
        gfilter = GripperFilter(opt.gripper_threshold or 0.0, opt.gripper_hysteresis, opt.gripper_closed_below)

        pose_topic = tp.joint_states if use_fk else tp.ee_pose
        wanted = {tp.image, tp.camera_info, pose_topic, grip_topic, tp.task, tp.tf_static, tp.detections}
        conns = [c for c in reader.connections if c.topic in wanted]
        frames: list[CameraFrame] = []
        poses: list[tuple[float, npt.NDArray[np.float64]]] = []
        grips: list[tuple[float, bool]] = []
        detections: list[tuple[float, Any]] = []
        info = None
        task_text: str | None = None
        tf_edges: list[tuple[str, str, npt.NDArray[np.float64]]] = []
        truncated: str | None = None
        try:
            for conn, t_ns, raw in reader.messages(connections=conns):
                topic = conn.topic
                if topic == tp.camera_info and info is not None:
                    continue
                msg = reader.deserialize(raw, conn.msgtype)
                if topic == tp.image:
                    dec, shape = _image_decoder(msg, conn.msgtype)
                    frames.append(CameraFrame(None, _stamp(msg, t_ns), decode=dec, shape=shape or (0, 0, 3)))
                elif topic == tp.camera_info:
                    info = msg
                elif topic == tp.detections:
                    detections.append((_stamp(msg, t_ns), msg))
                elif topic == tp.task:
                    task_text = msg.data
                elif topic == tp.tf_static:
                    for tr in msg.transforms:
                        q, v = tr.transform.rotation, tr.transform.translation
                        T = pose_to_matrix([v.x, v.y, v.z], [q.x, q.y, q.z, q.w])
                        tf_edges.append((tr.header.frame_id, tr.child_frame_id, T))
                if topic == pose_topic:
                    if fk is not None:
                        poses.append((_stamp(msg, t_ns), fk(list(msg.name), msg.position)))
                    else:
                        poses.append((_stamp(msg, t_ns), pose_msg_to_matrix(msg.pose)))
                if topic == grip_topic:
                    if grip_type.endswith("/JointState"):
                        names = list(msg.name)
                        if opt.gripper_joint not in names:
                            raise BagError(f"{path}: joint {opt.gripper_joint!r} not in {grip_topic} ({names})")
                        grips.append((_stamp(msg, t_ns), gfilter(float(msg.position[names.index(opt.gripper_joint)]))))
                    elif numeric:
                        grips.append((t_ns * 1e-9, gfilter(float(msg.data))))
                    else:
                        grips.append((t_ns * 1e-9, bool(msg.data)))
        except (ImageEncodingError, BagError) as exc:
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
        cam_pose = chain_transform(tf_edges, opt.base_frame, opt.camera_frame)
        if cam_pose is None:
            raise BagError(
                f"{path}: no camera pose: give 'camera_pose' or record {tp.tf_static} "
                f"({opt.base_frame} -> {opt.camera_frame})"
            )
    text = opt.instruction or task_text or sidecar.get("instruction")
    if not text:
        raise BagError(f"{path}: no instruction: record {tp.task}, write it in {EPISODE_SIDECAR}, or pass one")
    camera = CameraModel.from_camera_info(list(info.k), list(info.d), info.width, info.height, info.distortion_model)
    shape = (camera.height, camera.width, 3)
    for fr in frames:
        if fr.shape == (0, 0, 3):  # compressed: the CameraInfo tells the size; checked again when decoded
            fr.shape = shape
    frames.sort(key=lambda f: f.stamp)
    if detections:
        _assign_boxes(frames, [(t, _boxes_from_detections(m, camera.width, camera.height)) for t, m in detections])
    else:
        _assign_boxes(frames, _boxes_from_sidecar(path))
    meta: dict[str, Any] = {"source": str(path)}
    if truncated:
        meta["truncated"] = truncated
    if recovered is not None:
        meta["recovered_messages"] = recovered
    if "success" in sidecar:
        meta["operator_success"] = sidecar["success"]
    return Episode(episode_id or path.name, text, camera, cam_pose, frames, align_states(poses, grips), metadata=meta)


def align_states(
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


def quaternion_pose(T: npt.ArrayLike) -> tuple[float, ...]:
    """4×4 -> (x, y, z, qx, qy, qz, qw), the ``camera_pose`` option's form."""
    M = np.asarray(T, dtype=np.float64)
    q = matrix_to_quaternion(M[:3, :3])
    return (*(float(v) for v in M[:3, 3]), *(float(v) for v in q))
