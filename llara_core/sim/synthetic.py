"""Geometry-exact synthetic episodes: a flat-shaded tabletop drawn with OpenCV, no physics.

Why this exists beside the MuJoCo simulator: it builds an :class:`Episode` in
milliseconds from nothing but :mod:`llara_core.geometry`, with ground truth
known exactly (every pixel comes from projecting known 3-D points). Tests of
the data pipeline use it (datasets, prompts, the writer's crash safety); anything that needs
contacts, grasps or a robot model uses ``llara_core.sim`` instead.

Scene: robot base at the origin, table plane z = 0, blocks (cubes) and flat
pads on the table, a fixed camera looking at the workspace obliquely. A scripted
"gripper" moves blocks onto pads; its state is what a recording would hold.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from llara_core.datasets.episodes import CameraFrame, Episode, RobotState
from llara_core.geometry import CameraModel, base_to_normalized, look_at
from llara_core.language.objects import ObjectBox
from llara_core.sim.scene import COLORS as SIM_COLORS

# The simulator's palette, in 0-255: one set of color names across the synthetic and MuJoCo scenes.
COLORS: dict[str, tuple[int, int, int]] = {k: tuple(round(255 * c) for c in v) for k, v in SIM_COLORS.items()}  # type: ignore[misc]
BLOCK_SIZE = 0.05  # m, cube edge
PAD_SIZE = 0.10  # m, square pad edge
WORKSPACE = ((0.35, 0.70), (-0.25, 0.25))  # x, y ranges on the table (m)
TABLE_RGB = (200, 190, 170)
LIFT = np.array([0.0, 0.0, 0.12])  # m, approach/retreat height above grasp and place


@dataclass
class _Item:
    name: str
    color: tuple[int, int, int]
    xy: npt.NDArray[np.float64]
    yaw: float
    size: float
    height: float

    def corners(self, z0: float = 0.0) -> npt.NDArray[np.float64]:
        """8 corners (bottom 4, top 4) in the base frame."""
        c, s, a = math.cos(self.yaw), math.sin(self.yaw), self.size / 2
        local = np.array([[-a, -a], [a, -a], [a, a], [-a, a]])
        xy = local @ np.array([[c, s], [-s, c]]) + self.xy
        bottom = np.c_[xy, np.full(4, z0)]
        top = np.c_[xy, np.full(4, z0 + self.height)]
        return np.vstack([bottom, top])


def default_camera(width: int = 160, height: int = 120) -> tuple[CameraModel, npt.NDArray[np.float64]]:
    """The synthetic scene's camera and its pose (base_T_optical): oblique, facing the robot."""
    return CameraModel.from_fovy(55.0, width, height), look_at([1.05, 0.0, 0.65], [0.52, 0.0, 0.0])


def _sample_positions(rng: random.Random, n: int, min_dist: float) -> list[npt.NDArray[np.float64]]:
    out: list[npt.NDArray[np.float64]] = []
    while len(out) < n:
        p = np.array([rng.uniform(*WORKSPACE[0]), rng.uniform(*WORKSPACE[1])])
        if all(np.linalg.norm(p - q) >= min_dist for q in out):
            out.append(p)
    return out


def make_episode(
    seed: int, n_blocks: int = 3, n_steps: int = 1, width: int = 160, height: int = 120, with_boxes: bool = True
) -> Episode:
    """A synthetic demonstration: move ``n_steps`` blocks onto one pad, each with a random turn."""
    if not 1 <= n_steps <= n_blocks <= len(COLORS) - 1:
        raise ValueError("need 1 <= n_steps <= n_blocks <= 5")
    rng = random.Random(seed)
    colors = rng.sample(sorted(COLORS), n_blocks + 1)
    pos = _sample_positions(rng, n_blocks + 1, 0.12)
    pad = _Item(f"{colors[0]} pad", COLORS[colors[0]], pos[0], 0.0, PAD_SIZE, 0.0)
    blocks = [
        _Item(f"{c} block", COLORS[c], p, math.radians(rng.uniform(-40, 40)), BLOCK_SIZE, BLOCK_SIZE)
        for c, p in zip(colors[1:], pos[1:], strict=True)
    ]
    movers = blocks[:n_steps]
    names = " and ".join(f"the {b.name}" for b in movers)
    instruction = f"put {names} on the {pad.name}"
    camera, cam_pose = default_camera(width, height)

    frames: list[CameraFrame] = []
    states: list[RobotState] = []
    ee = np.array([0.3, 0.0, 0.3])
    ee_yaw, closed, held = 0.0, False, None
    t = 0.0

    def snap() -> None:
        nonlocal t
        T = np.eye(4)
        c, s = math.cos(ee_yaw), math.sin(ee_yaw)
        T[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        T[:3, 3] = ee
        states.append(RobotState(t, T, closed))
        img, boxes = _render(camera, cam_pose, [pad, *blocks], ee, held)
        frames.append(CameraFrame(img, t, boxes if with_boxes else None))
        t += 0.1

    snap()
    for k, blk in enumerate(movers):
        grasp = np.array([*blk.xy, blk.height / 2])
        ee_yaw = blk.yaw
        for p in (grasp + LIFT, grasp):
            ee = p
            snap()
        closed, held = True, blk
        snap()  # pick keyframe
        turn = math.radians(rng.choice([-60, -30, 0, 0, 30, 60, 90]))
        offset = (np.array([(k % 2) - 0.5, (k // 2) - 0.5]) * 0.04) if n_steps > 1 else np.zeros(2)
        place = np.array([*(pad.xy + offset), blk.height / 2])
        yaw0 = blk.yaw
        for p, ee_yaw in ((grasp + LIFT, yaw0), (place + LIFT, yaw0 + turn), (place, yaw0 + turn)):
            ee = p
            blk.xy, blk.yaw = p[:2].copy(), ee_yaw
            snap()
        closed, held = False, None
        snap()  # place keyframe
        ee = place + LIFT
        snap()
    return Episode(
        episode_id=f"synthetic-{seed:06d}",
        instruction=instruction,
        camera=camera,
        camera_pose=cam_pose,
        frames=frames,
        states=states,
        metadata={"source": "llara_core.sim.synthetic", "seed": seed, "step_objects": [b.name for b in movers]},
    )


def _render(
    camera: CameraModel,
    cam_pose: npt.NDArray[np.float64],
    items: list[_Item],
    ee: npt.NDArray[np.float64],
    held: _Item | None,
) -> tuple[npt.NDArray[np.uint8], list[ObjectBox]]:
    """Draw the scene (painter's order, farthest first) and return the image and object boxes."""
    import cv2

    W, H = camera.width, camera.height
    img = np.full((H, W, 3), TABLE_RGB, dtype=np.uint8)
    boxes: list[ObjectBox] = []
    eye = cam_pose[:3, 3]
    order = sorted(items, key=lambda it: -np.linalg.norm(np.r_[it.xy, 0] - eye))
    for it in order:
        z0 = ee[2] - it.height / 2 if it is held else 0.0
        corners = it.corners(z0)
        uv = base_to_normalized(camera, cam_pose, corners)
        px = np.round(uv * [W, H] - 0.5).astype(np.int32)
        if it.height > 0:
            hull = cv2.convexHull(px)
            shade = tuple(int(c * 0.7) for c in it.color)
            cv2.fillConvexPoly(img, hull, shade, lineType=cv2.LINE_AA)
            cv2.fillConvexPoly(img, px[4:], it.color, lineType=cv2.LINE_AA)
        else:
            cv2.fillConvexPoly(img, px[:4], it.color, lineType=cv2.LINE_AA)
        boxes.append(ObjectBox.from_corners(it.name, *uv.min(axis=0), *uv.max(axis=0)))
    tip = np.round(base_to_normalized(camera, cam_pose, ee) * [W, H] - 0.5).astype(int)
    cv2.circle(img, (int(tip[0]), int(tip[1])), max(2, W // 60), (60, 60, 60), -1, lineType=cv2.LINE_AA)
    boxes.sort(key=lambda b: b.name)
    return img, boxes
