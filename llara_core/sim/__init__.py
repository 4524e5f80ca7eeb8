"""The embedded MuJoCo tabletop: the project's own arm (URDF), scenes, task families and a scripted expert.

It stands in for camera + arm so the whole loop — demonstrations, conversion,
training, closed-loop evaluation — runs without a robot or a GPU.
Rendering is offscreen on the CPU: EGL (Mesa) by default, OSMesa when EGL is
absent; set ``MUJOCO_GL`` yourself to override. The choice is made when a
simulator is created (:func:`select_gl` before MuJoCo is first imported), not
when this package is imported: importing it changes no process state.
"""

from __future__ import annotations

import ctypes.util
import os


def select_gl() -> str:
    """Choose MuJoCo's offscreen GL backend before mujoco is imported; returns the choice.

    MuJoCo reads ``MUJOCO_GL`` once, at import. EGL renders headless with
    Mesa's software driver; OSMesa is the fallback on machines without libEGL.
    """
    if "MUJOCO_GL" not in os.environ:
        if ctypes.util.find_library("EGL"):
            os.environ["MUJOCO_GL"] = "egl"
        elif ctypes.util.find_library("OSMesa"):
            os.environ["MUJOCO_GL"] = "osmesa"
        else:
            os.environ["MUJOCO_GL"] = "egl"  # mujoco's error then names what is missing
    if os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    return os.environ["MUJOCO_GL"]
