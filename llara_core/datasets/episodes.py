"""The Episode: one demonstration, shared by the simulator, bag conversion, training and evaluation.

An episode is what a behaviour-cloning recording holds, reduced to what LLaRA
needs: the instruction, camera frames (with one calibrated camera and its pose
in the robot base frame), end-effector poses, gripper open/closed, and optional
object boxes. Action steps are *derived* (gripper close = pick, open = place),
never stored, so every producer only has to record what it observed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError
from llara_core.geometry import CameraModel, base_to_normalized, wrap_degrees, yaw_of
from llara_core.language.actions import COORD_DECIMALS, ActionKind, ActionStep
from llara_core.language.objects import ObjectBox, object_at


class CameraFrame:
    """One RGB image (H×W×3 uint8) with its time stamp (s) and, when known, the visible objects.

    The image may be given decoded, or as ``decode`` (a callable returning it)
    plus its ``shape``: bag conversion keeps the raw message bytes and decodes
    only the frames that end up in the dataset (a 300-frame episode typically
    needs a handful). The decoded image is cached on first access.
    """

    __slots__ = ("_decode", "_image", "objects", "shape", "stamp")

    def __init__(
        self,
        image: npt.NDArray[np.uint8] | None,
        stamp: float,
        objects: list[ObjectBox] | None = None,
        *,
        decode: Callable[[], npt.NDArray[np.uint8]] | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> None:
        if (image is None) == (decode is None):
            raise ValueError("give exactly one of image or decode")
        if image is not None:
            shape = tuple(int(v) for v in image.shape) if image.dtype == np.uint8 else None
        elif shape is None:
            raise ValueError("a lazily decoded frame needs its shape")
        self._image = image
        self._decode = decode
        self.shape = shape
        self.stamp = float(stamp)
        self.objects = objects

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        if self._image is None:
            assert self._decode is not None
            img = self._decode()
            if img.shape != self.shape or img.dtype != np.uint8:
                raise EpisodeError(
                    f"frame at {self.stamp:.3f} s decoded to {img.shape} {img.dtype}, expected {self.shape}"
                )
            self._image, self._decode = img, None
        return self._image

    @property
    def decoded(self) -> bool:
        return self._image is not None


@dataclass(frozen=True)
class RobotState:
    """End-effector pose (4×4, base frame) and gripper state at one time stamp (s).

    ``joints`` (name -> position), when the producer knows them, lets the
    episode be written as sensor_msgs/JointState and converted back through FK.
    """

    stamp: float
    ee_pose: npt.NDArray[np.float64]
    gripper_closed: bool
    joints: dict[str, float] | None = None


@dataclass(frozen=True)
class Keyframe:
    kind: Literal["pick", "place"]
    state_index: int
    stamp: float


@dataclass(frozen=True)
class EpisodeStep:
    """One pick→place segment: state indices of both keyframes and the frames around it.

    ``obs_frame`` is the observation the policy would see before the step (the
    first frame, or the first frame at/after the previous place plus the settle
    time); ``end_frame`` the first frame at/after this step's place plus settle.
    """

    pick_state: int
    place_state: int
    obs_frame: int
    end_frame: int


class EpisodeError(LlaraError, ValueError):
    """The episode's data is inconsistent (unsorted stamps, wrong image shape, …)."""


@dataclass
class Episode:
    """A demonstration. See the module docstring; ``camera_pose`` is base_T_optical (4×4)."""

    episode_id: str
    instruction: str
    camera: CameraModel
    camera_pose: npt.NDArray[np.float64]
    frames: list[CameraFrame]
    states: list[RobotState]
    kind: ActionKind = "pick_place"
    settle_s: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.camera_pose = np.asarray(self.camera_pose, dtype=np.float64)
        if self.camera_pose.shape != (4, 4):
            raise EpisodeError(f"camera_pose must be 4x4, got {self.camera_pose.shape}")
        if not self.frames:
            raise EpisodeError(f"episode {self.episode_id!r} has no camera frames")
        for name, stamps in (("frame", [f.stamp for f in self.frames]), ("state", [s.stamp for s in self.states])):
            if any(b < a for a, b in itertools.pairwise(stamps)):
                raise EpisodeError(f"episode {self.episode_id!r}: {name} stamps are not sorted")
        shape = (self.camera.height, self.camera.width, 3)
        for i, f in enumerate(self.frames):
            if f.shape != shape:
                got = f"{f.image.shape} {f.image.dtype}" if f.decoded else str(f.shape)
                raise EpisodeError(
                    f"episode {self.episode_id!r} frame {i}: image {got}, expected {shape} uint8 to match the CameraInfo"
                )

    # -- keyframes and steps ---------------------------------------------------------------------
    def keyframes(self) -> list[Keyframe]:
        """Gripper close (pick) and open (place) events, in time order."""
        out: list[Keyframe] = []
        for i in range(1, len(self.states)):
            prev, cur = self.states[i - 1].gripper_closed, self.states[i].gripper_closed
            if cur != prev:
                out.append(Keyframe("pick" if cur else "place", i, self.states[i].stamp))
        return out

    def frame_at_or_after(self, stamp: float) -> int:
        """Index of the first frame with stamp >= ``stamp`` (the last frame if none)."""
        stamps = np.fromiter((f.stamp for f in self.frames), dtype=np.float64, count=len(self.frames))
        return min(int(np.searchsorted(stamps, stamp, side="left")), len(self.frames) - 1)

    def steps(self) -> list[EpisodeStep]:
        """Complete pick→place pairs. A place without a pick, or a final pick never released, is dropped."""
        out: list[EpisodeStep] = []
        pending: Keyframe | None = None
        prev_place_stamp: float | None = None
        for kf in self.keyframes():
            if kf.kind == "pick":
                pending = kf
            elif pending is not None:
                obs = 0 if prev_place_stamp is None else self.frame_at_or_after(prev_place_stamp + self.settle_s)
                end = self.frame_at_or_after(kf.stamp + self.settle_s)
                out.append(EpisodeStep(pending.state_index, kf.state_index, obs, end))
                prev_place_stamp = kf.stamp
                pending = None
        return out

    def action_steps(self) -> list[ActionStep]:
        """Each pick→place pair as an :class:`ActionStep` in this episode's camera image.

        Pick/place points are the end-effector positions at the keyframes,
        projected through the camera; ``rotation_deg`` is LLaRA's clockwise-
        positive yaw change (the negative of the counter-clockwise base-frame
        yaw change), rounded to whole degrees like LLaRA's released data.
        Raises ``GeometryError`` if a keyframe is behind the camera and
        ``ValueError`` if it projects outside the image.
        """
        result: list[ActionStep] = []
        names = list(self.metadata.get("step_objects") or [])
        for i, st in enumerate(self.steps(), start=1):
            pick_T = self.states[st.pick_state].ee_pose
            place_T = self.states[st.place_state].ee_pose
            pts = base_to_normalized(self.camera, self.camera_pose, np.stack([pick_T[:3, 3], place_T[:3, 3]]))
            pts = np.round(pts, COORD_DECIMALS) + 0.0
            dyaw = wrap_degrees(math.degrees(yaw_of(place_T) - yaw_of(pick_T)))
            pick = (float(pts[0, 0]), float(pts[0, 1]))
            name = names[i - 1] if i <= len(names) else object_at(self.objects_at(st.obs_frame) or [], pick)
            result.append(
                ActionStep(
                    pick=pick,
                    place=(float(pts[1, 0]), float(pts[1, 1])),
                    rotation_deg=float(round(-dyaw)) + 0.0,
                    kind=self.kind,
                    object=name,
                    index=i,
                )
            )
        return result

    def objects_at(self, frame_index: int) -> list[ObjectBox] | None:
        """Object boxes of a frame, or None when this episode has no boxes for it."""
        return self.frames[frame_index].objects


def align_states(
    poses: Iterable[tuple[float, npt.NDArray[np.float64]]], grips: list[tuple[float, bool]]
) -> list[RobotState]:
    """One state per pose message, with the gripper value last received at or before it (streams of a bag)."""
    grips = sorted(grips)
    gt = np.array([g[0] for g in grips])
    out = []
    for t, M in sorted(poses, key=lambda p: p[0]):
        i = int(np.searchsorted(gt, t + 1e-9, side="right")) - 1
        out.append(RobotState(t, M, grips[max(i, 0)][1]))
    return out
