"""Tabletop scenes: the object catalogue, seeded layouts, and the MuJoCo model built around the arm URDF.

The arm, table and camera come from ``urdf/llara_arm.urdf`` (MuJoCo compiles
it); this module adds only what a URDF cannot say — objects with free joints,
targets, actuators, lights, the rendering camera and solver options — through
``mujoco.MjSpec``, so there is no second copy of the kinematics.

Shapes: graspable ``block`` (4 cm cube), ``cylinder``, ``bar`` (8×3×3 cm) and
``hexagon`` (hexagonal prism, the held-out novel shape of level L3); targets
``pad`` (flat square) and ``bowl`` (round container). Objects are named
``"<color> <shape>"``, targets just ``"<shape>"`` (at most one of each).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.errors import LlaraError
from llara_core.geometry import CAMERA_FRAME

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.15, 0.15),
    "green": (0.15, 0.65, 0.25),
    "blue": (0.15, 0.30, 0.85),
    "yellow": (0.92, 0.80, 0.15),
    "purple": (0.55, 0.25, 0.70),
    "orange": (0.95, 0.50, 0.10),
}
GRASPABLE_SHAPES: tuple[str, ...] = ("block", "cylinder", "bar", "hexagon")
TARGET_SHAPES: tuple[str, ...] = ("pad", "bowl")
TARGET_RGB = {"pad": (0.92, 0.92, 0.90), "bowl": (0.45, 0.45, 0.50)}

# Geometry (m). half_height: object center above the table; half_width: half the span across a grasp;
# footprint: radius of a circle holding the object seen from above (for layouts).
OBJECT_HEIGHT = 0.04
HEX_RADIUS = 0.022
BAR_SIZE = (0.08, 0.03, 0.04)
PAD_HALF = 0.06
PAD_THICK = 0.004
BOWL_RADIUS = 0.09  # inner wall radius
BOWL_WALL = (0.008, 0.035)  # thickness, height
BOWL_BASE = 0.008
FOOTPRINT = {
    "block": 0.0283,
    "cylinder": 0.02,
    "bar": 0.0427,
    "hexagon": HEX_RADIUS,
    "pad": PAD_HALF * math.sqrt(2),
    "bowl": BOWL_RADIUS + BOWL_WALL[0],
}
GRASP_HALF_WIDTH = {"block": 0.02, "cylinder": 0.02, "bar": 0.015, "hexagon": HEX_RADIUS * math.sqrt(3) / 2}
# Yaw symmetry of the grasp (rad): the expert may turn the hand by multiples of this.
GRASP_SYMMETRY = {"block": math.pi / 2, "cylinder": math.pi / 3, "bar": math.pi, "hexagon": math.pi / 3}
# Top of the surface an object rests on when placed in/on a target.
TARGET_TOP = {"pad": PAD_THICK, "bowl": BOWL_BASE}
TARGET_INNER = {"pad": PAD_HALF - 0.01, "bowl": BOWL_RADIUS - 0.015}

WORKSPACE = ((0.32, 0.62), (-0.24, 0.24))  # x, y ranges of object centers (m)
CLEARANCE = 0.045  # between footprints: room for the open fingers


@dataclass(frozen=True)
class ObjectSpec:
    """One object or target of a scene, with its initial pose on the table."""

    shape: str
    color: str | None
    xy: tuple[float, float]
    yaw: float

    @property
    def name(self) -> str:
        return self.shape if self.color is None else f"{self.color} {self.shape}"

    @property
    def is_target(self) -> bool:
        return self.shape in TARGET_SHAPES

    @property
    def rgb(self) -> tuple[float, float, float]:
        return TARGET_RGB[self.shape] if self.color is None else COLORS[self.color]

    def outline(self) -> npt.NDArray[np.float64]:
        """Points on the object's hull in its own frame (origin on the table under its center)."""
        if self.shape in ("block", "bar"):
            sx, sy, sz = (OBJECT_HEIGHT,) * 3 if self.shape == "block" else BAR_SIZE
            xs, ys, zs = (-sx / 2, sx / 2), (-sy / 2, sy / 2), (0.0, sz)
            return np.array([[x, y, z] for x in xs for y in ys for z in zs])
        if self.shape == "pad":
            return np.array([[x, y, PAD_THICK] for x in (-PAD_HALF, PAD_HALF) for y in (-PAD_HALF, PAD_HALF)])
        n, r, h = {
            "cylinder": (24, 0.02, OBJECT_HEIGHT),
            "hexagon": (6, HEX_RADIUS, OBJECT_HEIGHT),
            "bowl": (24, BOWL_RADIUS + BOWL_WALL[0], BOWL_BASE + BOWL_WALL[1]),
        }[self.shape]
        a = np.arange(n) * 2 * math.pi / n
        ring = np.c_[r * np.cos(a), r * np.sin(a)]
        return np.vstack([np.c_[ring, np.zeros(n)], np.c_[ring, np.full(n, h)]])


@dataclass
class Scene:
    """Objects and targets of one episode, with the seed that produced the layout."""

    objects: list[ObjectSpec]
    seed: int = 0
    meta: dict[str, object] = field(default_factory=dict)

    def by_name(self, name: str) -> ObjectSpec:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"no object {name!r} in the scene; have {[o.name for o in self.objects]}")

    @property
    def graspables(self) -> list[ObjectSpec]:
        return [o for o in self.objects if not o.is_target]

    @property
    def targets(self) -> list[ObjectSpec]:
        return [o for o in self.objects if o.is_target]


class LayoutError(LlaraError, RuntimeError):
    """No collision-free layout found for these objects."""


def sample_layout(rng: random.Random, items: list[tuple[str, str | None]], tries: int = 2000) -> list[ObjectSpec]:
    """Place (shape, color) items on the table without overlap, targets first (they are largest)."""
    order = sorted(range(len(items)), key=lambda i: -FOOTPRINT[items[i][0]])
    placed: dict[int, ObjectSpec] = {}
    for i in order:
        shape, color = items[i]
        r = FOOTPRINT[shape]
        for _ in range(tries):
            x = rng.uniform(WORKSPACE[0][0] + (r if shape in TARGET_SHAPES else 0), WORKSPACE[0][1])
            y = rng.uniform(WORKSPACE[1][0] + r * 0.5, WORKSPACE[1][1] - r * 0.5)
            if all(math.hypot(x - o.xy[0], y - o.xy[1]) >= r + FOOTPRINT[o.shape] + CLEARANCE for o in placed.values()):
                placed[i] = ObjectSpec(shape, color, (x, y), rng.uniform(-math.pi, math.pi))
                break
        else:
            raise LayoutError(f"could not place {color or ''} {shape} after {tries} tries")
    return [placed[i] for i in range(len(items))]


# -- MuJoCo model ------------------------------------------------------------------------------
CAMERA_NAME = "scene_camera"
ARM_BODIES = ("link1", "link2", "link3", "link4", "link5", "hand", "finger_left", "finger_right")
FINGER_BODIES = ("finger_left", "finger_right")


def _hex_mesh_vertices() -> list[float]:
    a = np.arange(6) * math.pi / 3
    ring = np.c_[HEX_RADIUS * np.cos(a), HEX_RADIUS * np.sin(a)]
    h = OBJECT_HEIGHT / 2
    return np.vstack([np.c_[ring, np.full(6, -h)], np.c_[ring, np.full(6, h)]]).reshape(-1).tolist()


def build_spec(scene: Scene, fovy: float, width: int, height: int, urdf: str | None = None) -> Any:
    """The MjSpec of the scene: the arm URDF plus objects, targets, actuators, lights and camera."""
    import mujoco

    from llara_core.sim.arm import ARM_JOINTS, FINGER_JOINTS, urdf_path

    spec = mujoco.MjSpec.from_file(str(urdf or urdf_path()))
    spec.modelname = "llara_tabletop"
    opt = spec.option
    opt.timestep = 0.002
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.impratio = 10.0
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    # A 512 shadow map instead of 4096: CPU rendering is ~4x faster with shadows that still read.
    spec.visual.quality.shadowsize = 512
    spec.visual.global_.offwidth = max(width, 640)
    spec.visual.global_.offheight = max(height, 480)
    spec.visual.headlight.ambient = [0.35, 0.35, 0.35]
    spec.visual.headlight.diffuse = [0.3, 0.3, 0.3]

    for b in spec.bodies:
        if b.name in ARM_BODIES:
            b.gravcomp = 1.0  # the arm's servos hold it like a real controller's gravity compensation
    for g in spec.geoms:
        if g.parent.name in FINGER_BODIES:
            g.friction = [1.5, 0.02, 0.002]
            g.condim = 4
            g.solref = [0.01, 1.0]

    kp = {"joint1": 1500, "joint2": 2500, "joint3": 1500, "joint4": 400, "joint5": 400, "joint6": 200}
    for j in ARM_JOINTS:
        a = spec.add_actuator()
        a.name, a.target, a.trntype = j, j, mujoco.mjtTrn.mjTRN_JOINT
        a.set_to_position(kp=kp[j], dampratio=1.0)
        joint = spec.joint(j)
        joint.armature = 0.05
    for j in FINGER_JOINTS:
        a = spec.add_actuator()
        a.name, a.target, a.trntype = j, j, mujoco.mjtTrn.mjTRN_JOINT
        a.set_to_position(kp=400, dampratio=1.0)
        a.forcelimited = True
        a.forcerange = [-12.0, 12.0]
        spec.joint(j).armature = 0.01

    cam_body = spec.body(CAMERA_FRAME)
    cam = cam_body.add_camera()
    cam.name = CAMERA_NAME
    cam.fovy = fovy
    cam.quat = [0.0, 1.0, 0.0, 0.0]  # MuJoCo cameras look down -z with y up: the optical frame turned 180° about x
    light = spec.worldbody.add_light()
    light.name = "sun"
    light.pos = [0.3, 0.4, 1.6]
    light.dir = [0.1, -0.25, -1.0]
    light.diffuse = [0.6, 0.6, 0.6]
    light.castshadow = True

    spec.add_mesh(name="hexagon_mesh", uservert=_hex_mesh_vertices())
    for obj in scene.objects:
        _add_object(spec, obj)
    return spec


def _add_object(spec: Any, obj: ObjectSpec) -> None:
    import mujoco

    G = mujoco.mjtGeom
    body = spec.worldbody.add_body()
    body.name = obj.name
    c, s = math.cos(obj.yaw / 2), math.sin(obj.yaw / 2)
    body.quat = [c, 0.0, 0.0, s]
    rgba = [*obj.rgb, 1.0]

    def geom(gtype: object, size: list[float], pos: list[float], mass: float = 0.0, **kw: object) -> None:
        g = body.add_geom()
        g.type, g.size, g.pos, g.rgba = gtype, [*size, 0.0, 0.0][:3], pos, rgba
        if mass:
            g.mass = mass
        g.friction = [1.0, 0.02, 0.002]
        g.condim = 4
        for k, v in kw.items():
            setattr(g, k, v)

    h = OBJECT_HEIGHT / 2
    if obj.shape == "pad":
        body.pos = [obj.xy[0], obj.xy[1], 0.0]
        geom(G.mjGEOM_BOX, [PAD_HALF, PAD_HALF, PAD_THICK / 2], [0, 0, PAD_THICK / 2])
        return
    if obj.shape == "bowl":  # heavy and free: it can be bumped, as a real bowl can
        body.pos = [obj.xy[0], obj.xy[1], 0.0]
        body.add_freejoint()
        r_out = BOWL_RADIUS + BOWL_WALL[0]
        geom(G.mjGEOM_CYLINDER, [r_out, BOWL_BASE / 2], [0, 0, BOWL_BASE / 2], mass=0.6)
        n = 20
        seg = 2 * r_out * math.tan(math.pi / n) + 0.002
        for k in range(n):
            a = 2 * math.pi * k / n
            rc = BOWL_RADIUS + BOWL_WALL[0] / 2
            g = body.add_geom()
            g.type, g.rgba, g.mass = G.mjGEOM_BOX, rgba, 0.02
            g.size = [BOWL_WALL[0] / 2, seg / 2, BOWL_WALL[1] / 2]
            g.pos = [rc * math.cos(a), rc * math.sin(a), BOWL_BASE + BOWL_WALL[1] / 2]
            g.quat = [math.cos(a / 2), 0.0, 0.0, math.sin(a / 2)]
        return
    body.pos = [obj.xy[0], obj.xy[1], h]
    body.add_freejoint()
    if obj.shape == "block":
        geom(G.mjGEOM_BOX, [h, h, h], [0, 0, 0], mass=0.06)
    elif obj.shape == "bar":
        geom(G.mjGEOM_BOX, [BAR_SIZE[0] / 2, BAR_SIZE[1] / 2, BAR_SIZE[2] / 2], [0, 0, 0], mass=0.06)
    elif obj.shape == "cylinder":
        geom(G.mjGEOM_CYLINDER, [0.02, h], [0, 0, 0], mass=0.05)
    elif obj.shape == "hexagon":
        geom(G.mjGEOM_MESH, [0, 0, 0], [0, 0, 0], mass=0.05, meshname="hexagon_mesh")
    else:
        raise ValueError(f"unknown shape {obj.shape!r}")
