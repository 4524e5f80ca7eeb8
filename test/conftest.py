"""Session setup: a random ROS_DOMAIN_ID (set before anything imports rclpy) so parallel runs never collide."""

import os
import random

os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
os.environ.setdefault("MUJOCO_GL", "egl")
