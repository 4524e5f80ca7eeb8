"""ament_python package definition: `colcon build` in a ROS 2 workspace, or `pip install -e .` in a venv.

Runtime Python dependencies are listed in requirements*.txt rather than
install_requires: in a ROS workspace rosdep resolves package.xml, and in a venv
the Makefile installs torch==2.13.0 (CPU) *before* anything that could pull a
CUDA build of torch.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "llara_ros"

# Every executable a user starts. Node entry points join this list as the nodes land
# (test_packaging checks that each one imports and is callable).
CONSOLE_SCRIPTS = [
    "llara = llara_core.apps.cli:main",
    "recorder_node = llara_ros.recorder_node:main",
    "convert_bags = llara_ros.convert_bags:main",
    "action_node = llara_ros.action_node:main",
    "sim_node = llara_ros.sim_node:main",
    "policy_node = llara_ros.policy_node:main",
    "console_node = llara_ros.console_node:main",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["llara_core", "llara_core.*", "llara_ros", "llara_ros.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/urdf", glob("urdf/*.urdf") + glob("urdf/*.xacro")),
        (f"share/{PACKAGE}/models/llara-tiny-sim", glob("models/llara-tiny-sim/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="llara_ros maintainers",
    maintainer_email="maintainers@llara-ros.invalid",
    description="LLaRA vision-language robot policy for ROS 2",
    license="Apache-2.0",
    tests_require=["pytest"],
    python_requires=">=3.10",
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
