"""From an action step in image coordinates to gripper poses on the table (what the action node executes).

LLaRA's action text gives a pick and a place point in the image and a
rotation; the arm needs 3-D poses. The points are lifted through the
calibrated camera onto horizontal planes (grasp height, place height) of the
base frame. A parallel gripper also needs a grasp yaw, which the text does not
carry: the hand keeps its relaxed orientation (tool x axis towards the base)
unless the object under the pick point is elongated, in which case the
fingers close across its short axis. The object's outline is found by the
colour of the pick pixel (OpenCV connected components) and measured on the
table plane, so the estimate is metric, not distorted by the oblique view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llara_core.actions import ActionStep
from llara_core.geometry import CameraModel, GeometryError, intersect_plane, normalized_to_table

MIN_SATURATION = 80  # OpenCV 0..255: below it a pixel is grey, grouped by RGB distance instead of hue
ELONGATED = 1.6  # ratio of the principal axes above which the grasp follows the object's axis


@dataclass(frozen=True)
class StepPlan:
    """Base-frame pick and place points, the hand yaw for the grasp, and the turn (rad, counter-clockwise)."""

    pick: npt.NDArray[np.float64]
    place: npt.NDArray[np.float64]
    grasp_yaw: float
    rotation: float


def relaxed_yaw(xy: npt.ArrayLike) -> float:
    """Hand yaw with the wrist rolls at zero: the tool x axis points from the point back to the base."""
    p = np.asarray(xy, dtype=np.float64)
    return math.atan2(p[1], p[0]) + math.pi


def nearest_yaw(angle: float, symmetry: float, preferred: float) -> float:
    """``angle + k·symmetry`` closest to ``preferred`` (rad): the equivalent hand yaw the wrist reaches easiest."""
    return angle + round((preferred - angle) / symmetry) * symmetry


@dataclass(frozen=True)
class Outline:
    """An object's blob under a pick point, measured on a table plane (base frame)."""

    center: npt.NDArray[np.float64]  # (x, y) of the blob's centroid
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
    mask = mask.astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=4)
    label = labels[min(cv_, mask.shape[0] - 1), min(cu, mask.shape[1] - 1)]
    if n <= 1 or label == 0:
        return None
    vs, us = np.nonzero(labels == label)
    if len(us) < 8:
        return None
    whole = bool(us.min() > 0 and vs.min() > 0 and us.max() < mask.shape[1] - 1 and vs.max() < mask.shape[0] - 1)
    rays = camera.pixel_to_ray(np.c_[us + x0, vs + y0].astype(np.float64))
    rays_base = rays @ T[:3, :3].T
    pts = np.array([intersect_plane(T[:3, 3], d, [0, 0, plane_z], [0, 0, 1])[:2] for d in rays_base])
    mean = pts.mean(axis=0)
    evals, evecs = np.linalg.eigh(np.cov((pts - mean).T))
    major = evecs[:, 1]
    ratio = math.sqrt(max(evals[1], 1e-12) / max(evals[0], 1e-12))
    return Outline(mean, math.atan2(major[1], major[0]), ratio, whole)


def plan_step(
    step: ActionStep,
    camera: CameraModel,
    base_T_cam: npt.ArrayLike,
    grasp_z: float,
    place_z: float,
    image: npt.NDArray[np.uint8] | None = None,
    refine_grasp: bool = True,
) -> StepPlan:
    """Lift a parsed step to base-frame points and choose the grasp yaw (see the module docstring).

    With ``refine_grasp`` the grasp is centred on the object the pick point lies
    on (the centroid of its blob, when the whole blob is in view): a parallel
    gripper needs the object between its fingers, whereas LLaRA's suction cup
    only needs the point to be on the object — this gives the fingers that same
    tolerance. A pick point off every object is executed as it is.

    Raises :class:`~llara_core.geometry.GeometryError` when a point's ray misses
    the plane (e.g. a point above the horizon): such a step must not move the arm.
    """
    pick = normalized_to_table(camera, base_T_cam, step.pick, grasp_z)
    place = normalized_to_table(camera, base_T_cam, step.place, place_z)
    yaw = relaxed_yaw(pick[:2])
    if image is not None:
        outline = object_outline(image, camera, base_T_cam, step.pick, grasp_z)
        if outline is not None:
            if refine_grasp and outline.whole:
                pick = np.array([*outline.center, grasp_z])
                yaw = relaxed_yaw(pick[:2])
            if outline.ratio >= ELONGATED:
                yaw = nearest_yaw(outline.yaw, math.pi, yaw)  # tool x along the long axis
    return StepPlan(pick, place, yaw, -math.radians(step.rotation_deg))
