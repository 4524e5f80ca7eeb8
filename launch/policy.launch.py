"""policy_node + action_node on a real robot: ros2 launch llara_ros policy.launch.py [rviz:=true] [urdf:=...].

Parameters come from config/policy.yaml (``params_file:=`` for yours); the action
node starts inactive and in dry run (README "Connecting a real arm"). The
plain-venv equivalent, without ``launch``: python -m llara_ros.bringup config/policy.yaml.
RViz and robot_state_publisher are optional: one that is not installed is named in one line, the rest starts.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import Command, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from llara_ros.launch_support import console_node, optional_node

PARAMS = "policy.yaml"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("llara_ros")
    params = LaunchConfiguration("params_file")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", PARAMS)),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/llara.rviz"),
            DeclareLaunchArgument(
                "console", default_value="false", description="serve the operator console on http://127.0.0.1:8088/"
            ),
            DeclareLaunchArgument(
                "robot_state_publisher",
                default_value="false",
                description="publish robot_description and TF from urdf (if your driver does not)",
            ),
            DeclareLaunchArgument("urdf", default_value=os.path.join(share, "urdf", "llara_arm.urdf")),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds.xml")),
            Node(
                package="llara_ros", executable="policy_node", name="policy_node", parameters=[params], output="screen"
            ),
            # a lifecycle node: `ros2 lifecycle set /action_node configure|activate`, or launch's lifecycle events
            LifecycleNode(
                package="llara_ros",
                executable="action_node",
                name="action_node",
                namespace="",
                parameters=[params],
                output="screen",
            ),
            console_node(),
            optional_node(
                package="robot_state_publisher",
                executable="robot_state_publisher",
                enabled="robot_state_publisher",
                parameters=[
                    {
                        "robot_description": ParameterValue(
                            Command(["cat ", LaunchConfiguration("urdf")]), value_type=str
                        )
                    }
                ],
            ),
            optional_node(
                package="rviz2",
                executable="rviz2",
                enabled="rviz",
                arguments=["-d", os.path.join(share, "config", "llara.rviz")],
            ),
        ]
    )
