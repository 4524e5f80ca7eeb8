"""The closed loop in the embedded simulator: ros2 launch llara_ros sim_demo.launch.py [rviz:=true].

sim_node -> policy_node (the shipped model) -> action_node (joint_trajectory) -> sim_node, parameters from
config/sim_demo.yaml. Start an episode with: ros2 service call /sim_node/reset std_srvs/srv/Trigger.
robot_state_publisher (TF for RViz; robot_state_publisher:=false to skip) and RViz are optional: where one is
not installed, the launch says so in one line and starts the rest.
The plain-venv equivalent: python -m llara_ros.bringup config/sim_demo.yaml (make demo runs the whole demo).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import Command, LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from llara_ros.launch_support import console_node, optional_node

PARAMS = "sim_demo.yaml"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory("llara_ros")
    params = LaunchConfiguration("params_file")
    urdf = os.path.join(share, "urdf", "llara_arm.urdf")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", PARAMS)),
            DeclareLaunchArgument("rviz", default_value="false", description="start RViz with config/llara.rviz"),
            DeclareLaunchArgument(
                "console", default_value="false", description="serve the operator console on http://127.0.0.1:8088/"
            ),
            DeclareLaunchArgument(
                "robot_state_publisher", default_value="true", description="publish TF of urdf/llara_arm.urdf"
            ),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", os.path.join(share, "config", "fastdds.xml")),
            Node(package="llara_ros", executable="sim_node", name="sim_node", parameters=[params], output="screen"),
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
                    {"robot_description": ParameterValue(Command(["cat ", urdf]), value_type=str), "use_sim_time": True}
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
