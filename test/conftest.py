"""Session setup, before anything imports rclpy: a private ROS graph for this test session.

A random free ``ROS_DOMAIN_ID`` (never 0 and never the one the shell exported,
so a lab machine's ``export ROS_DOMAIN_ID=0`` cannot put the tests' joint
trajectories on the robot's graph) with discovery limited to this machine, so
parallel runs never collide; ``LLARA_TEST_DOMAIN_ID=N`` picks N.
"""

import os

import pytest

from llara_ros.bringup import isolate

_chosen = os.environ.get("LLARA_TEST_DOMAIN_ID")
print(isolate(int(_chosen) if _chosen else None))
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def robot():
    """This test's side of the wires (``ros_helpers.Robot``) on an initialised rclpy context."""
    import rclpy
    from ros_helpers import Robot

    rclpy.init()
    r = Robot()
    yield r
    r.close()
    rclpy.shutdown()
