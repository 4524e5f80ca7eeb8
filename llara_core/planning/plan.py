"""Action text -> a base-frame motion plan, or a typed refusal: one planner for the simulator, evaluation and hardware.

LLaRA's action text gives a pick and a place point in the image and a
rotation; the arm needs 3-D poses. :func:`plan_action` takes the model's
answer verbatim and returns either an :class:`ActionPlan` or a
:class:`Refusal` with its reason — it never raises on any text:

1. :func:`select_step` — the step to execute (LLaRA executes one step, then
   re-queries). ``partial="refuse"`` (hardware default) executes nothing unless
   every step parses; ``"first_step"`` (the closed-loop evaluation) executes the
   first step when it is the first action-like line and complete. A text whose
   first step is invalid is never executed, whatever follows.
2. :func:`plan_step` — the points are lifted through the calibrated camera onto
   horizontal planes of the base frame (grasp and place heights above the
   table). A parallel gripper also needs a grasp yaw, which the text does not
   carry: the hand keeps its relaxed orientation unless the object under the
   pick point is elongated, in which case the fingers close across it; with
   ``refine_grasp`` the grasp is centred on that object (its outline from the
   image, OpenCV connected components measured on the table plane).
3. :func:`~llara_core.planning.motions.plan_motion` — the waypoint sequence
   every executor runs (pre-grasp, open, descend, close, lift, carry turning by
   the step's rotation, descend, release, retreat; tool pointing down), and
   with a kinematic model its joint trajectories: free-space moves in joint
   space, approach and retreat straight (see :mod:`llara_core.planning.motions`).
4. The refusals: a point off the table plane, a waypoint outside the
   workspace box, no joint path (when a kinematic model is given).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from llara_core.geometry import CameraModel, GeometryError, intersect_plane, normalized_to_table, quaternion_pose
from llara_core.language.actions import ActionStep, ParseError, first_step, parse_actions
from llara_core.planning.kinematics import RobotKinematics
from llara_core.planning.motions import (
    Gripper,
    JointSegment,
    Motion,
    MotionError,
    PlanItem,
    motion_plan,
    nearest_yaw,
    plan_motion,
    relaxed_yaw,
)
from llara_core.planning.settings import ExecutionSettings, Partial, Workspace

FloatArray = npt.NDArray[np.float64]
MIN_SATURATION = 80  # OpenCV 0..255: below it a pixel is grey, grouped by RGB distance instead of hue
ELONGATED = 1.6  # ratio of the principal axes above which the grasp follows the object's axis


# -- step selection -------------------------------------------------------------------------------
def select_step(answer: str, partial: Partial = "refuse") -> ActionStep | ParseError:
    """The step to execute from a model answer, or the error that forbids executing anything.

    ``partial="refuse"``: every step must parse (a text with any invalid step
    moves nothing). ``"first_step"``: only the first action-like line must be a
    complete, valid step; later lines are the model's plan and not executed.
    """
    if partial == "first_step":
        return first_step(answer)
    res = parse_actions(answer)
    return res.steps[0] if res.ok else res.errors[0]


# -- lifting a step onto the table -----------------------------------------------------------------
@dataclass(frozen=True)
class Outline:
    """An object's blob under a pick point, measured on a table plane (base frame)."""

    center: FloatArray  # (x, y) of the blob's centroid
    yaw: float  # direction of the major axis (rad)
    ratio: float  # major / minor axis
    whole: bool  # the blob lies inside the search window (so ``center`` is the object's, not a cut-off part's)


def object_outline(
    image: npt.NDArray[np.uint8],
    camera: CameraModel,
    base_T_cam: npt.ArrayLike,
    xy: tuple[float, float],
    plane_z: float,
    radius_m: float = 0.08,
    color_tol: float = 45.0,
    hue_tol: int = 6,
) -> Outline | None:
    """The blob of the pick pixel's colour around ``xy`` (OpenCV connected components); None if none.

    Coloured pixels are grouped by hue, so the lit top and the shaded sides of
    an object form one blob; its pixels are measured on the plane ``plane_z``.
    """
    import cv2

    T = np.asarray(base_T_cam, dtype=np.float64)
    H, W = image.shape[:2]
    u, v = (float(c) for c in camera.normalized_to_pixel(xy))
    if not (0 <= u < W and 0 <= v < H):
        return None
    try:
        center = normalized_to_table(camera, T, xy, plane_z)
    except GeometryError:
        return None
    depth = float(np.linalg.norm(center - T[:3, 3]))
    r = max(4, int(camera.K[0, 0] * radius_m / depth))
    x0, x1, y0, y1 = max(0, int(u) - r), min(W, int(u) + r + 1), max(0, int(v) - r), min(H, int(v) + r + 1)
    win = np.ascontiguousarray(image[y0:y1, x0:x1])
    cu, cv_ = round(u) - x0, round(v) - y0
    hsv = cv2.cvtColor(win, cv2.COLOR_RGB2HSV).astype(np.int16)  # H in 0..179
    ref = np.median(hsv[max(0, cv_ - 1) : cv_ + 2, max(0, cu - 1) : cu + 2].reshape(-1, 3), axis=0)
    if ref[1] >= MIN_SATURATION:  # a coloured object: same hue, whatever the shading of its faces
        dh = np.abs(hsv[..., 0] - ref[0])
        mask = (np.minimum(dh, 180 - dh) <= hue_tol) & (hsv[..., 1] >= ref[1] / 2) & (hsv[..., 2] >= 40)
    else:  # grey or white: plain colour distance
        mask = np.linalg.norm(win.astype(np.float32) - win[cv_, cu].astype(np.float32), axis=2) < color_tol
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    label = labels[min(cv_, mask.shape[0] - 1), min(cu, mask.shape[1] - 1)]
    if n <= 1 or label == 0:
        return None
    vs, us = np.nonzero(labels == label)
    if len(us) < 8:
        return None
    whole = bool(us.min() > 0 and vs.min() > 0 and us.max() < mask.shape[1] - 1 and vs.max() < mask.shape[0] - 1)
    try:
        rays = camera.pixel_to_ray(np.c_[us + x0, vs + y0].astype(np.float64))
    except GeometryError:
        return None
    rays_base = rays @ T[:3, :3].T
    pts = np.array([intersect_plane(T[:3, 3], d, [0, 0, plane_z], [0, 0, 1])[:2] for d in rays_base])
    mean = pts.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov((pts - mean).T))
    major = evecs[:, 1]
    ratio = math.sqrt(max(evals[1], 1e-12) / max(evals[0], 1e-12))
    return Outline(mean, math.atan2(major[1], major[0]), ratio, whole)


def depth_point(
    camera: CameraModel,
    base_T_cam: npt.ArrayLike,
    xy: tuple[float, float],
    depth: npt.NDArray[np.generic],
    window: int = 5,
) -> FloatArray:
    """The base-frame point under ``xy`` from a registered depth image (16UC1 mm or 32FC1 m).

    The median of the valid depths in a ``window``×``window`` patch (zeros,
    NaN and infinities are invalid); GeometryError when none is valid.
    """
    d = np.asarray(depth)
    scale = 0.001 if d.dtype == np.uint16 else 1.0
    u, v = (round(c) for c in camera.normalized_to_pixel(xy))
    h = window // 2
    patch = d[max(0, v - h) : v + h + 1, max(0, u - h) : u + h + 1].astype(np.float64) * scale
    valid = patch[np.isfinite(patch) & (patch > 0)]
    if valid.size == 0:
        raise GeometryError(f"no valid depth around pixel ({u}, {v})")
    p_cam = camera.lift_depth([camera.normalized_to_pixel(xy)], [float(np.median(valid))])[0]
    T = np.asarray(base_T_cam, dtype=np.float64)
    return T[:3, :3] @ p_cam + T[:3, 3]


@dataclass(frozen=True)
class StepPlan:
    """Base-frame pick and place points, the hand yaw for the grasp, and the turn (rad, counter-clockwise)."""

    pick: FloatArray
    place: FloatArray
    grasp_yaw: float
    rotation: float


def plan_step(
    step: ActionStep,
    camera: CameraModel,
    base_T_cam: npt.ArrayLike,
    settings: ExecutionSettings = ExecutionSettings(),
    image: npt.NDArray[np.uint8] | None = None,
    depth: npt.NDArray[np.generic] | None = None,
) -> StepPlan:
    """Lift a parsed step to base-frame points and choose the grasp yaw (see the module docstring).

    With a registered ``depth`` image the points' x, y come from the measured
    surface (:func:`depth_point`) instead of the table plane; the heights stay
    the configured ones. Raises :class:`~llara_core.geometry.GeometryError` when
    a point's ray misses the plane (e.g. a point above the horizon) or has no
    valid depth: such a step must not move the arm.
    """
    grasp_z, place_z = settings.z(settings.grasp_height), settings.z(settings.place_plane)
    if depth is not None:
        pick = np.array([*depth_point(camera, base_T_cam, step.pick, depth)[:2], grasp_z])
        place = np.array([*depth_point(camera, base_T_cam, step.place, depth)[:2], place_z])
    else:
        pick = normalized_to_table(camera, base_T_cam, step.pick, grasp_z)
        place = normalized_to_table(camera, base_T_cam, step.place, place_z)
    yaw = relaxed_yaw(pick[:2], settings.yaw_offset)
    if image is not None:
        outline = object_outline(image, camera, base_T_cam, step.pick, grasp_z)
        if outline is not None:
            if settings.refine_grasp and outline.whole:
                pick = np.array([*outline.center, grasp_z])
                yaw = relaxed_yaw(pick[:2], settings.yaw_offset)
            if outline.ratio >= ELONGATED:
                yaw = nearest_yaw(outline.yaw, math.pi, yaw)  # tool x along the long axis
    return StepPlan(pick, place, yaw, -math.radians(step.rotation_deg))


# -- the whole planning path -------------------------------------------------------------------------
@dataclass(frozen=True)
class Refusal:
    """Why nothing may move: ``code`` for programs, ``reason`` for people."""

    code: Literal["parse", "geometry", "workspace", "kinematics", "input"]
    reason: str
    ok: Literal[False] = False


@dataclass(frozen=True)
class ActionPlan:
    """The executable plan of one step: the motion items and, with a kinematic model, their joint trajectories."""

    step: ActionStep
    lifted: StepPlan
    items: tuple[PlanItem, ...]
    joints: tuple[JointSegment | Gripper, ...] = field(default=())
    ok: Literal[True] = True

    @property
    def poses(self) -> list[FloatArray]:
        return [it.pose for it in self.items if isinstance(it, Motion)]

    def to_json(self) -> dict[str, object]:
        """``{"waypoints": [[x, y, z, qx, qy, qz, qw], …], "gripper": [...]}`` (``llara plan`` output)."""
        return {
            "waypoints": [[round(v, 6) for v in quaternion_pose(p)] for p in self.poses],
            "labels": [it.label for it in self.items if isinstance(it, Motion)],
            "gripper": [
                {
                    "after": sum(isinstance(x, Motion) for x in self.items[:i]),
                    "closed": it.closed,
                    "opening": it.opening,
                }
                for i, it in enumerate(self.items)
                if isinstance(it, Gripper)
            ],
            "step": {"pick": list(self.step.pick), "place": list(self.step.place), "rotation": self.step.rotation_deg},
        }


def plan_action(
    answer: str,
    camera: CameraModel | None,
    base_T_cam: npt.ArrayLike | None,
    settings: ExecutionSettings = ExecutionSettings(),
    *,
    image: npt.NDArray[np.uint8] | None = None,
    depth: npt.NDArray[np.generic] | None = None,
    workspace: Workspace | None = None,
    kinematics: RobotKinematics | None = None,
    q0: npt.ArrayLike | None = None,
    partial: Partial = "refuse",
    half_width: float = 0.02,
) -> ActionPlan | Refusal:
    """The model's answer -> the plan of its step, or why nothing may move. Never raises on any text.

    With ``kinematics`` (and the current joints ``q0``, else its home), every
    motion is solved into joint segments, so an unreachable pose is refused
    before anything moves.
    """
    if camera is None:
        return Refusal("input", "no camera_info received yet (or camera_info_file not set)")
    if base_T_cam is None:
        return Refusal("input", "no camera pose: set camera_pose or publish the base -> camera transform")
    step = select_step(answer, partial) if isinstance(answer, str) else None
    if not isinstance(step, ActionStep):
        why = str(step) if step is not None else f"expected the answer as text, got {type(answer).__name__}"
        return Refusal("parse", f"answer not executable: {why}")
    try:
        lifted = plan_step(step, camera, base_T_cam, settings, image, depth)
    except (GeometryError, ValueError) as exc:
        return Refusal("geometry", f"cannot lift {step.pick} / {step.place} onto the table: {exc}")
    release = [*lifted.place[:2], settings.z(settings.release_height)]
    items = motion_plan(lifted.pick, release, lifted.grasp_yaw, lifted.rotation, settings, half_width)
    ws = workspace or Workspace()
    for it in items:
        if isinstance(it, Motion) and not ws.contains(it.pose[:3, 3]):
            p = np.round(it.pose[:3, 3], 3).tolist()
            return Refusal("workspace", f"{it.label} at {p} is outside the workspace x{ws.x} y{ws.y} z{ws.z}")
    joints: tuple[JointSegment | Gripper, ...] = ()
    if kinematics is not None:
        start = kinematics.home if q0 is None else q0
        try:
            items, joints = plan_motion(
                kinematics, start, lifted.pick, release, lifted.grasp_yaw, lifted.rotation, settings, half_width
            )
        except MotionError as exc:
            return Refusal("kinematics", f"not reachable: {exc}")
    return ActionPlan(step, lifted, items, joints)
