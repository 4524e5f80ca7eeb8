"""llara_core: the ROS-free LLaRA library (action language, prompts, episodes, datasets, geometry).

Importing this package must never import rclpy: everything here is usable and
testable in plain Python; ROS nodes in ``llara_ros`` are thin wrappers.
"""

__version__ = "0.1.0"
