"""One rosbag2 per demonstration, written from serialized messages as they arrive (what recorder_node uses).

ROS-free: the node hands over (topic, type, receive time, CDR bytes); this
class owns the bag. It writes the exact wire bytes (re-serializing what rclpy
deserialized can append junk rosbags rejects), and checkpoints the storage
every ``checkpoint_s`` so that a recorder killed mid-episode leaves a bag whose
complete part :func:`llara_core.datasets.bags.recover_bag` turns back into a normal bag.

Checkpointing reaches into rosbags' storage writers (commit of the sqlite3
transaction; closing and flushing the pending mcap chunk): rosbags has no public
flush. ``test_recorder_node`` kills a real recorder process to keep that honest.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llara_core.config import check_choices, setting
from llara_core.datasets.bags import BagTopics, Storage, typestore, write_sidecar
from llara_core.errors import LlaraError

#: The message type each topic of the bag contract carries (the first one where several are accepted), and
#: what conversion needs instead when it cannot be recorded (its message package is not installed).
CONTRACT_TYPES: dict[str, tuple[str, str]] = {
    "image": ("sensor_msgs/msg/Image", "nothing: the camera is required"),
    "camera_info": ("sensor_msgs/msg/CameraInfo", "nothing: the intrinsics are required"),
    "ee_pose": ("geometry_msgs/msg/PoseStamped", "'urdf' and joint_states for forward kinematics"),
    "joint_states": ("sensor_msgs/msg/JointState", "ee_pose and a gripper topic"),
    "gripper": ("std_msgs/msg/Bool", "'gripper_joint' in joint_states"),
    "task": ("std_msgs/msg/String", "the instruction in llara_episode.yaml (the recorder's 'task' parameter)"),
    "tf_static": ("tf2_msgs/msg/TFMessage", "'camera_pose' (x y z qx qy qz qw) in the conversion config"),
    "detections": (
        "vision_msgs/msg/Detection2DArray",
        "boxes.json in the bag folder, or D-inBC is skipped "
        "(the simulator's /llara/objects are still written into the bag as detections)",
    ),
}
DEFAULT_TOPICS: tuple[str, ...] = tuple(getattr(BagTopics(), f.name) for f in fields(BagTopics))


class RecordingError(LlaraError, RuntimeError):
    """The recording cannot start or a topic cannot be recorded (the message says why)."""


@dataclass(frozen=True)
class RecorderConfig:
    """recorder_node's parameters (``config/recorder.yaml``)."""

    output_dir: str = setting("llara_episodes", "folder that receives one bag folder per episode", path=True)
    storage: Storage = setting("mcap", "rosbag2 storage")
    topics: tuple[str, ...] = setting(DEFAULT_TOPICS, "topics to record (types are discovered from the graph)")
    episode_prefix: str = setting("episode", "bag folder name prefix")
    task: str = setting("", "instruction of the next episodes (the task topic overrides it)")
    checkpoint_s: float = setting(0.5, "seconds between flushes to disk (what a killed recorder keeps)")

    def __post_init__(self) -> None:
        check_choices(self)
        if not self.topics or any(not t.startswith("/") for t in self.topics):
            raise ValueError(f"topics must be a non-empty list of absolute topic names, got {list(self.topics)}")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.episode_prefix):
            raise ValueError(f"episode_prefix {self.episode_prefix!r} must be a file-name-safe word")
        if self.checkpoint_s <= 0:
            raise ValueError("checkpoint_s must be > 0")


def unrecordable(topics: tuple[str, ...], importable: Any, bag_topics: BagTopics = BagTopics()) -> list[str]:
    """One line per configured contract topic whose message package ``importable(pkg)`` says is missing here."""
    lines = []
    for f in fields(BagTopics):
        topic = getattr(bag_topics, f.name)
        msgtype, instead = CONTRACT_TYPES[f.name]
        pkg = msgtype.split("/")[0]
        if topic in topics and not importable(pkg):
            lines.append(
                f"cannot record {topic} ({msgtype}): Python package {pkg} is not installed here (source a ROS 2 "
                f"workspace that has it, e.g. ros-<distro>-{pkg.replace('_', '-')}); convert_bags then needs {instead}"
            )
    return lines


@dataclass
class EpisodeBag:
    """An open episode bag: connections by topic, message counts, the metadata for its sidecar."""

    path: Path
    writer: Any
    storage: Storage
    connections: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    instruction: str | None = None
    success: bool | None = None
    started: float = field(default_factory=time.time)


class EpisodeRecorder:
    """Start, feed and stop episode bags in ``output_dir``; one at a time."""

    def __init__(
        self, output_dir: str | Path, storage: Storage = "mcap", prefix: str = "episode", checkpoint_s: float = 0.5
    ) -> None:
        if storage not in ("mcap", "sqlite3"):
            raise RecordingError(f"storage must be mcap or sqlite3, got {storage!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", prefix):
            raise RecordingError(f"episode prefix {prefix!r} must be a file-name-safe word")
        self.output_dir = Path(output_dir).expanduser()
        self.storage: Storage = storage
        self.prefix = prefix
        self.checkpoint_s = checkpoint_s
        self.ts = typestore()
        self.current: EpisodeBag | None = None
        self.last: EpisodeBag | None = None
        self._last_checkpoint = 0.0

    @property
    def recording(self) -> bool:
        return self.current is not None

    def start(self, instruction: str | None = None) -> Path:
        """Open a new bag named ``<prefix>_<UTC time>_<n>``; raises if one is already open."""
        from rosbags.rosbag2 import StoragePlugin, Writer

        if self.current is not None:
            raise RecordingError(f"an episode is already being recorded: {self.current.path}")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
        n = 0
        while (path := self.output_dir / f"{self.prefix}_{stamp}_{n}").exists():
            n += 1
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        writer = Writer(path, version=9, storage_plugin=plugin)
        writer.open()
        self.current = EpisodeBag(path, writer, self.storage, instruction=instruction)
        write_sidecar(path, instruction, None, state="recording")
        self._last_checkpoint = time.monotonic()
        return path

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Record ``topic`` of ``msgtype`` (e.g. sensor_msgs/msg/Image) in the open bag."""
        ep = self._need()
        if topic in ep.connections:
            return
        if msgtype not in self.ts.types:
            raise RecordingError(f"cannot record {topic}: no message definition for {msgtype} in the typestore")
        ep.connections[topic] = ep.writer.add_connection(topic, msgtype, typestore=self.ts)
        ep.counts[topic] = 0

    def write(self, topic: str, t_ns: int, data: bytes) -> None:
        """Append one serialized message (CDR bytes, as received) at receive time ``t_ns``."""
        ep = self._need()
        ep.writer.write(ep.connections[topic], int(t_ns), bytes(data))
        ep.counts[topic] += 1
        if time.monotonic() - self._last_checkpoint >= self.checkpoint_s:
            self.checkpoint()

    def write_objects(self, topic: str, t_ns: int, text: str) -> None:
        """Record one ``/llara/objects`` JSON message as a vision_msgs Detection2DArray on ``topic``."""
        from llara_core.datasets.bags.detections import detections_cdr

        self.add_topic(topic, "vision_msgs/msg/Detection2DArray")
        self.write(topic, t_ns, detections_cdr(self.ts, text))

    def set_instruction(self, text: str) -> None:
        if self.current is not None:
            self.current.instruction = text

    def checkpoint(self) -> None:
        """Push what was written so far to disk (see the module docstring for why this touches internals)."""
        ep = self._need()
        st = ep.writer.storage
        if ep.storage == "sqlite3":
            st.conn.commit()
        elif st.chunk.bio.tell():
            st.close_chunk()
            st.bio.flush()
        self._last_checkpoint = time.monotonic()

    def stop(self) -> EpisodeBag:
        """Close the bag (metadata.yaml, mcap summary) and write its sidecar; returns the finished episode."""
        ep = self._need()
        ep.writer.close()
        self.current, self.last = None, ep
        self._write_sidecar(ep)
        return ep

    def mark(self, success: bool) -> EpisodeBag:
        """Set the operator's success flag on the open episode, else on the last finished one."""
        ep = self.current or self.last
        if ep is None:
            raise RecordingError("no episode to mark: start one first")
        ep.success = bool(success)
        if ep is self.last:
            self._write_sidecar(ep)
        return ep

    def _write_sidecar(self, ep: EpisodeBag) -> None:
        write_sidecar(
            ep.path,
            ep.instruction,
            ep.success,
            state="finished",
            messages=ep.counts,
            duration_s=time.time() - ep.started,
        )

    def _need(self) -> EpisodeBag:
        if self.current is None:
            raise RecordingError("no episode is being recorded: call start_episode first")
        return self.current
