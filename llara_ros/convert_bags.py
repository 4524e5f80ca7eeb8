"""convert_bags: rosbag2 episodes -> LLaRA training conversations, as a ROS 2 executable.

    ros2 run llara_ros convert_bags --ros-args -p bags:="[/data/ep1, /data/ep2]" -p out:=/data/ds \\
        -p config:=$(ros2 pkg prefix llara_ros)/share/llara_ros/config/conversion.yaml -p workers:=2

The same code as ``llara convert-bags`` (llara_core.convert): parameters set
here override the YAML ``config``. A bag parameter may name a folder holding
several bag folders. Exit code 0 when every bag converted, 2 when any was
skipped (see OUT/report.json), 1 for invalid parameters.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from llara_core.bags import BagTopics
from llara_core.convert import ConversionConfig, convert_bags, print_report

_TEXT = Parameter.Type.STRING


def expand_bags(paths: list[str]) -> list[Path]:
    """Bag folders; a folder without metadata.yaml or storage files is taken as a folder of bags."""
    out: list[Path] = []
    for p in map(Path, paths):
        is_bag = (p / "metadata.yaml").is_file() or any(p.glob("*.mcap")) or any(p.glob("*.db3"))
        out.extend([p] if is_bag or not p.is_dir() else sorted(c for c in p.iterdir() if c.is_dir()))
    return out


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = rclpy.create_node("convert_bags")
    try:

        def param(name: str, kind: Parameter.Type, text: str) -> object:
            """A typed parameter without a default: None unless the user sets it (the config or default wins)."""
            node.declare_parameter(name, kind, ParameterDescriptor(description=text))
            try:
                return node.get_parameter(name).value
            except ParameterUninitializedException:
                return None

        P = Parameter.Type
        bags = param("bags", P.STRING_ARRAY, "bag folders (or folders of bag folders) to convert")
        out = param("out", _TEXT, "dataset folder (created or resumed)")
        config = param("config", _TEXT, "YAML conversion config (topics, camera pose, gripper, kinds, workers)")
        kinds = param("kinds", P.STRING_ARRAY, "task kinds to emit (default: all eight)")
        workers = param("workers", P.INTEGER, "parallel processes over bags")
        instruction = param("instruction", _TEXT, "instruction for bags without a task topic or sidecar")
        camera_pose = param("camera_pose", P.DOUBLE_ARRAY, "x y z qx qy qz qw of the camera in the base frame")
        urdf = param("urdf", _TEXT, "URDF for end-effector poses from joint_states")
        gripper_joint = param("gripper_joint", _TEXT, "finger joint in joint_states")
        threshold = param("gripper_threshold", P.DOUBLE, "closed below this finger position / value")
        hysteresis = param("gripper_hysteresis", P.DOUBLE, "band around the threshold")
        topics = {k: param(f"topics.{k}", _TEXT, f"{k} topic (default {v})") for k, v in vars(BagTopics()).items()}
        if not bags or not out:
            raise ValueError("set 'bags' (string array) and 'out'")
        cfg = ConversionConfig.from_yaml(str(config)) if config else ConversionConfig()
        cfg = cfg.with_overrides(
            kinds=tuple(kinds) if kinds else None,  # type: ignore[arg-type]
            workers=workers,
            topics={k: v for k, v in topics.items() if v},
            instruction=instruction,
            camera_pose=tuple(camera_pose) if camera_pose else None,  # type: ignore[arg-type]
            urdf=urdf,
            gripper_joint=gripper_joint,
            gripper_threshold=threshold,
            gripper_hysteresis=hysteresis,
        )
    except (TypeError, ValueError, rclpy.exceptions.ParameterException) as exc:
        node.get_logger().error(f"invalid parameters: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 1
    node.get_logger().info(f"converting {len(expand_bags(bags))} bags into {out}")  # type: ignore[arg-type]
    report = convert_bags(expand_bags(bags), str(out), cfg)  # type: ignore[arg-type]
    node.destroy_node()
    rclpy.try_shutdown()
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
