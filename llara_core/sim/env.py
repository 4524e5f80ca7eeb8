"""The MuJoCo tabletop as a robot: joint-trajectory control, a gripper with real contacts, a calibrated camera.

What it gives a caller is what a ROS robot gives: camera images with their
CameraInfo and the camera's pose in the base frame, end-effector poses and
gripper state, and the execution of joint trajectories. Recording turns the
run into an :class:`~llara_core.datasets.episodes.Episode` — the same data model a
rosbag of a real arm becomes — so the whole pipeline is tested against known
ground truth.

Failures are reported, never hidden: the arm touching the table or an object
it is not handling is logged in :attr:`TabletopEnv.collisions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from llara_core.datasets.episodes import CameraFrame, Episode, RobotState
from llara_core.geometry import CAMERA_FRAME, CameraModel, base_to_normalized, transform_points
from llara_core.language.objects import ObjectBox
from llara_core.sim import select_gl
from llara_core.sim.arm import ARM_JOINTS, FINGER_JOINTS, FINGER_OPEN, HOME_Q, TCP_FRAME
from llara_core.sim.scene import ARM_BODIES, CAMERA_NAME, FINGER_BODIES, Scene, build_spec

DEFAULT_SIZE = (224, 224)  # width, height
DEFAULT_FOVY = 50.0


@dataclass(frozen=True)
class Collision:
    stamp: float
    arm_body: str
    other: str


class TabletopEnv:
    """One scene in MuJoCo. ``render=False`` skips images (fast expert evaluation)."""

    def __init__(
        self,
        scene: Scene,
        width: int = DEFAULT_SIZE[0],
        height: int = DEFAULT_SIZE[1],
        fovy: float = DEFAULT_FOVY,
        render: bool = True,
        record_hz: float = 10.0,
    ) -> None:
        select_gl()
        import mujoco

        self._mj = mujoco
        self.scene = scene
        self.width, self.height, self.fovy = int(width), int(height), float(fovy)
        self.model: Any = build_spec(scene, self.fovy, self.width, self.height).compile()
        self.data = mujoco.MjData(self.model)
        self.render_enabled = render
        self.record_period = 1.0 / record_hz
        self._renderer: Any = None
        m = self.model
        jid = {n: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in (*ARM_JOINTS, *FINGER_JOINTS)}
        self._arm_qadr = np.array([m.jnt_qposadr[jid[n]] for n in ARM_JOINTS])
        self._arm_range = m.jnt_range[[jid[n] for n in ARM_JOINTS]].T.copy()  # (lower, upper) of each arm joint
        self._finger_qadr = np.array([m.jnt_qposadr[jid[n]] for n in FINGER_JOINTS])
        self._arm_act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in ARM_JOINTS])
        self._finger_act = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, n) for n in FINGER_JOINTS])
        self._tcp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, TCP_FRAME)
        self._cam_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, CAMERA_FRAME)
        self._obj_body = {o.name: mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, o.name) for o in scene.objects}
        self._body_name = {i: mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, i) for i in range(m.nbody)}
        self._arm_body_ids = {i for i, n in self._body_name.items() if n in ARM_BODIES}
        self._finger_body_ids = {i for i, n in self._body_name.items() if n in FINGER_BODIES}
        self.camera = CameraModel.from_fovy(self.fovy, self.width, self.height)
        self.gripper_closed = False
        self.handling: str | None = None  # the object the arm may touch now
        self.collisions: list[Collision] = []
        self._recording = False
        self._traj: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], int, int] | None = None
        self._next_record = 0.0
        self.frames: list[CameraFrame] = []
        self.states: list[RobotState] = []
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        mj = self._mj
        mj.mj_resetData(self.model, self.data)
        self._traj = None
        self.data.qpos[self._arm_qadr] = HOME_Q
        self.data.qpos[self._finger_qadr] = FINGER_OPEN
        self.data.ctrl[self._arm_act] = HOME_Q
        self.data.ctrl[self._finger_act] = FINGER_OPEN
        self.gripper_closed = False
        mj.mj_forward(self.model, self.data)
        self.collisions.clear()
        self.run_for(0.3)

    @property
    def time(self) -> float:
        return float(self.data.time)

    @property
    def q(self) -> npt.NDArray[np.float64]:
        """Arm joint positions (6,)."""
        return self.data.qpos[self._arm_qadr].copy()

    @property
    def commanded_q(self) -> npt.NDArray[np.float64]:
        """Arm joint targets the servos hold now (where the next motion starts from)."""
        return self.data.ctrl[self._arm_act].copy()

    @property
    def finger_q(self) -> npt.NDArray[np.float64]:
        return self.data.qpos[self._finger_qadr].copy()

    def _body_pose(self, bid: int) -> npt.NDArray[np.float64]:
        T = np.eye(4)
        T[:3, :3] = self.data.xmat[bid].reshape(3, 3)
        T[:3, 3] = self.data.xpos[bid]
        return T

    def tcp_pose(self) -> npt.NDArray[np.float64]:
        """TCP pose in the base frame (MuJoCo's world is base_link: the URDF root sits at the origin)."""
        return self._body_pose(self._tcp)

    @property
    def camera_pose(self) -> npt.NDArray[np.float64]:
        """base_T_optical of the scene camera (the URDF's camera_color_optical_frame)."""
        return self._body_pose(self._cam_body)

    def object_pose(self, name: str) -> npt.NDArray[np.float64]:
        return self._body_pose(self._obj_body[name])

    def object_boxes(self) -> list[ObjectBox]:
        """Every object's box in normalized image coordinates, from its projected hull (occlusion ignored), by name."""
        out = []
        for o in self.scene.objects:
            pts = base_to_normalized(
                self.camera, self.camera_pose, transform_points(self.object_pose(o.name), o.outline())
            )
            out.append(ObjectBox.from_corners(o.name, *pts.min(axis=0), *pts.max(axis=0)))
        return sorted(out, key=lambda b: b.name)

    def render(self) -> npt.NDArray[np.uint8]:
        """RGB image (H×W×3) from the scene camera."""
        if self._renderer is None:
            self._renderer = self._mj.Renderer(self.model, self.height, self.width)
        r = self._renderer
        r.update_scene(self.data, camera=CAMERA_NAME)
        return np.ascontiguousarray(r.render())

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __enter__(self) -> TabletopEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stepping and control ------------------------------------------------------------------
    def _step(self) -> None:
        traj = self._traj
        if traj is not None:  # the active joint trajectory sets the servo targets, point by point
            tt, PP, k, n = traj
            k += 1
            now = k * self.model.opt.timestep
            self.data.ctrl[self._arm_act] = [np.interp(now, tt, PP[:, j]) for j in range(PP.shape[1])]
            self._traj = None if k >= n else (tt, PP, k, n)
        self._mj.mj_step(self.model, self.data)
        if traj is not None and self._traj is None:
            self.data.ctrl[self._arm_act] = traj[1][-1]  # the last point is held
        if self._recording and self.data.time + 1e-9 >= self._next_record:
            self.snapshot()
            self._check_contacts()
            self._next_record += self.record_period
        elif not self._recording and int(self.data.time / self.model.opt.timestep) % 5 == 0:
            self._check_contacts()

    def run_for(self, seconds: float) -> None:
        """Advance the physics by ``seconds`` with the current commands (the active trajectory keeps playing)."""
        for _ in range(max(1, round(seconds / self.model.opt.timestep))):
            self._step()

    def step(self, seconds: float) -> None:
        """Advance by ``seconds`` (0 steps when less than one physics step): what a real-time loop calls."""
        for _ in range(round(seconds / self.model.opt.timestep)):
            self._step()

    @property
    def moving(self) -> bool:
        """Whether a commanded joint trajectory is still playing."""
        return self._traj is not None

    def command_trajectory(self, times: npt.ArrayLike, positions: npt.ArrayLike) -> float:
        """Start following a joint trajectory (times from now, s; positions (N, 6)) without blocking.

        As ros2_control's joint_trajectory_controller does: the trajectory
        starts from the current joint positions, replaces any trajectory still
        playing, and its last point is held. Positions are interpolated linearly
        at the physics rate. Returns its duration; ValueError for a malformed
        trajectory (nothing is commanded then).
        """
        t = np.asarray(times, dtype=np.float64)
        P = np.asarray(positions, dtype=np.float64)
        if P.ndim != 2 or P.shape[1] != len(ARM_JOINTS) or len(t) != len(P) or len(t) == 0:
            raise ValueError(
                f"trajectory must be N times and (N, {len(ARM_JOINTS)}) positions, got {t.shape}, {P.shape}"
            )
        if np.any(t < 0) or (len(t) > 1 and np.any(np.diff(t) <= 0)):
            raise ValueError("trajectory times must be >= 0 and increase strictly")
        if not np.all(np.isfinite(P)) or not np.all(np.isfinite(t)):
            raise ValueError("trajectory times and positions must be finite")
        lo, hi = self._arm_range
        if np.any(P < lo - 1e-6) or np.any(P > hi + 1e-6):
            raise ValueError("trajectory leaves the joint limits")
        tt = np.concatenate([[0.0], t]) if t[0] > 0 else t
        PP = np.vstack([self.q, P]) if t[0] > 0 else P
        n = max(1, round(tt[-1] / self.model.opt.timestep))
        self._traj = (tt, PP, 0, n)
        return float(tt[-1])

    def stop_motion(self) -> None:
        """Hold the current joint positions (cancels the trajectory): what an emergency stop commands."""
        self._traj = None
        self.data.ctrl[self._arm_act] = self.q

    def execute(self, times: npt.ArrayLike, positions: npt.ArrayLike, settle_s: float = 0.15) -> float:
        """Follow a joint trajectory to its end, then hold the last point for ``settle_s``; returns the sim time."""
        t0 = self.time
        self.command_trajectory(times, positions)
        assert self._traj is not None
        self.run_for(self._traj[3] * self.model.opt.timestep)
        self.run_for(settle_s)
        return self.time - t0

    def command_gripper(self, closed: bool, opening: float | None = None) -> None:
        """Close (squeeze with the actuators' force limit) or open to ``opening`` per finger (m); non-blocking.

        A snapshot is taken at the moment of the command: the recorded state's
        gripper flag changes exactly at the pose where the grasp or release happens.
        """
        self.gripper_closed = closed
        target = 0.0 if closed else (FINGER_OPEN if opening is None else min(opening, FINGER_OPEN))
        self.data.ctrl[self._finger_act] = target
        if self._recording:
            self.snapshot()

    def set_gripper(self, closed: bool, opening: float | None = None, wait_s: float = 0.4) -> None:
        """:meth:`command_gripper`, then let the fingers move for ``wait_s``."""
        self.command_gripper(closed, opening)
        self.run_for(wait_s)

    def fingers_touch(self, name: str) -> bool:
        """Whether both fingers are in contact with the object ``name``."""
        bid = self._obj_body[name]
        touching = set()
        for c in self.data.contact[: self.data.ncon]:
            b1, b2 = self.model.geom_bodyid[c.geom1], self.model.geom_bodyid[c.geom2]
            if bid in (b1, b2):
                other = b2 if b1 == bid else b1
                if other in self._finger_body_ids:
                    touching.add(other)
        return len(touching) == 2

    def _check_contacts(self) -> None:
        allowed = self._obj_body.get(self.handling) if self.handling else None
        for c in self.data.contact[: self.data.ncon]:
            b1, b2 = int(self.model.geom_bodyid[c.geom1]), int(self.model.geom_bodyid[c.geom2])
            for arm, other in ((b1, b2), (b2, b1)):
                if arm in self._arm_body_ids and other not in self._arm_body_ids and other != allowed:
                    ev = Collision(self.time, self._body_name[arm], self._body_name[other])
                    if not self.collisions or (self.collisions[-1].arm_body, self.collisions[-1].other) != (
                        ev.arm_body,
                        ev.other,
                    ):
                        self.collisions.append(ev)

    # -- recording -----------------------------------------------------------------------------
    def start_recording(self) -> None:
        self.frames, self.states = [], []
        self._recording = True
        self._next_record = self.time + self.record_period
        self.snapshot()

    def stop_recording(self) -> None:
        if self._recording:
            self.snapshot()
        self._recording = False

    def snapshot(self) -> None:
        """Record the robot state and, when rendering, a camera frame with object boxes."""
        t = self.time
        if self.states and t <= self.states[-1].stamp:
            t = self.states[-1].stamp + 1e-6  # a command at the same instant as a periodic sample
        q = self.data.qpos
        joints = {n: float(q[a]) for n, a in zip(ARM_JOINTS, self._arm_qadr, strict=True)}
        joints.update({n: float(q[a]) for n, a in zip(FINGER_JOINTS, self._finger_qadr, strict=True)})
        self.states.append(RobotState(t, self.tcp_pose(), self.gripper_closed, joints))
        if self.render_enabled:
            self.frames.append(CameraFrame(self.render(), t, self.object_boxes()))

    def episode(self, episode_id: str, instruction: str, **metadata: object) -> Episode:
        """The recording as an Episode (needs ``render=True``: an episode holds camera frames)."""
        if not self.frames:
            raise RuntimeError(
                "nothing recorded with images: create the env with render=True and call start_recording()"
            )
        return Episode(
            episode_id=episode_id,
            instruction=instruction,
            camera=self.camera,
            camera_pose=self.camera_pose,
            frames=list(self.frames),
            states=list(self.states),
            settle_s=0.3,
            metadata={"source": "llara_core.sim", **metadata},
        )
