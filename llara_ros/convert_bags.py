"""convert_bags: rosbag2 episodes -> LLaRA training conversations, as a ROS 2 executable.

    ros2 run llara_ros convert_bags --ros-args -p bags:="[/data/ep1, /data/ep2]" -p out:=/data/ds \\
        -p config:=$(ros2 pkg prefix llara_ros)/share/llara_ros/config/conversion.yaml -p workers:=2

The same code as ``llara convert-bags`` (llara_core.datasets.convert). Parameters: the
job's (``bags``, ``out``, ``config``) and every key of the conversion config
(``kinds``, ``workers``, ``bag.base_frame``, ``bag.topics.image``, …) — those
set here override the YAML ``config``. ``~`` and ``$VARS`` in paths are
expanded. A bag parameter may name a folder holding several bag folders. Exit
code 0 when every bag converted, 2 when any was skipped (see OUT/report.json)
or the parameters are invalid.
"""

from __future__ import annotations

import sys

import rclpy

from llara_core.config import from_dict, load_yaml
from llara_core.datasets.convert import ConversionConfig, ConvertJob, convert_bags, expand_bags, print_report
from llara_core.errors import LlaraError
from llara_ros.params import declare_config, read_config, set_parameters


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = rclpy.create_node("convert_bags")
    try:
        declare_config(node, ConvertJob, use_defaults=False)
        declare_config(node, ConversionConfig, use_defaults=False)  # only what the user sets overrides the file
        job = read_config(node, ConvertJob)
        base = load_yaml(ConversionConfig, job.config) if job.config else ConversionConfig()
        cfg = from_dict(ConversionConfig, set_parameters(node, ConversionConfig), base)
    except (ValueError, LlaraError, rclpy.exceptions.ParameterException) as exc:
        node.get_logger().error(f"invalid parameters: {exc}")
        node.destroy_node()
        rclpy.try_shutdown()
        return 2
    bags = expand_bags(job.bags)
    node.get_logger().info(f"converting {len(bags)} bags into {job.out}")
    try:
        report = convert_bags(bags, job.out, cfg, force=job.force)
    except LlaraError as exc:
        node.get_logger().error(str(exc))
        return 2
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return print_report(report)


if __name__ == "__main__":
    sys.exit(main())
