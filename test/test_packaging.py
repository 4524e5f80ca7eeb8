"""The package as a user installs it: ament_python metadata, entry points, the CLI, and a rclpy-free core."""

import ast
import importlib
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _setup_call() -> dict:
    tree = ast.parse((ROOT / "setup.py").read_text())
    consts = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign)
        and isinstance(n.targets[0], ast.Name)
        and isinstance(n.value, (ast.List, ast.Constant))
    }
    return consts


# What an import needs: the rosdep key package.xml declares, or "pip" for what requirements.txt installs in
# both routes (torch and the ML stack have no rosdep keys that pin compatible versions).
DEPENDENCY_OF = {
    "rclpy": "rclpy",
    "rcl_interfaces": "rcl_interfaces",
    "builtin_interfaces": "builtin_interfaces",
    "rosgraph_msgs": "rosgraph_msgs",
    "ament_index_python": "ament_index_python",
    "sensor_msgs": "sensor_msgs",
    "geometry_msgs": "geometry_msgs",
    "trajectory_msgs": "trajectory_msgs",
    "visualization_msgs": "visualization_msgs",
    "std_msgs": "std_msgs",
    "std_srvs": "std_srvs",
    "diagnostic_msgs": "diagnostic_msgs",
    "lifecycle_msgs": "lifecycle_msgs",
    "tf2_msgs": "tf2_msgs",
    "tf2_ros": "tf2_ros_py",
    "vision_msgs": "vision_msgs",
    "moveit": "moveit_py",
    "cv_bridge": "cv_bridge",
    "launch": "launch",
    "launch_ros": "launch_ros",
    "robot_state_publisher": "robot_state_publisher",
    "rviz2": "rviz2",
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "PIL": "python3-pil",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    **{
        m: "pip"
        for m in (
            "torch",
            "transformers",
            "tokenizers",
            "safetensors",
            "accelerate",
            "peft",
            "rosbags",
            "mujoco",
            "pinocchio",
            "mcap",
            "openai",
            "httpx",
            "fastapi",
            "starlette",
            "uvicorn",
            "ray",
        )
    },
}
PIP_NAME = {"pinocchio": "pin"}
OPTIONAL = {"ray"}  # requirements-scale.txt


def _launch_nodes(
    path: Path, kinds: tuple[str, ...] = ("Node", "LifecycleNode", "optional_node"), conditional: bool = True
) -> list[tuple[str, str]]:
    """(package, executable) of every Node(...) / LifecycleNode(...) / optional_node(...) in a launch file (ast);
    ``conditional=False`` leaves out the nodes a launch argument switches on (``condition=``)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in kinds:
            kw = {k.arg: k.value for k in node.keywords}
            if not conditional and "condition" in kw:
                continue
            out.append((ast.literal_eval(kw["package"]), ast.literal_eval(kw["executable"])))
    return out


def test_the_action_node_is_launched_as_a_lifecycle_node_so_launch_can_drive_its_transitions():
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        assert ("llara_ros", "action_node") in _launch_nodes(path, ("LifecycleNode",)), path.name
        assert ("llara_ros", "action_node") not in _launch_nodes(path, ("Node",)), path.name


def test_launch_files_start_what_bringup_starts_from_the_same_parameter_files():
    """One source of truth: launch/X.launch.py and `python -m llara_ros.bringup config/<PARAMS>` agree."""
    from llara_ros.bringup import NODES, nodes_of

    scripts = {s.split("=")[0].strip() for s in _setup_call()["CONSOLE_SCRIPTS"]}
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        tree = ast.parse(path.read_text())
        params = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and getattr(n.targets[0], "id", "") == "PARAMS")  # fmt: skip
        ours = [exe for pkg, exe in _launch_nodes(path, conditional=False) if pkg == "llara_ros"]
        assert not [p for p, _ in _launch_nodes(path, ("Node",)) if p != "llara_ros"], (
            f"{path.name}: a node of another package must be an optional_node (a missing one fails the launch)"
        )
        assert ours == nodes_of(ROOT / "config" / params, [n for n in NODES if n in ours]), path.name
        assert set(ours) <= scripts, f"{path.name} starts executables setup.py does not install"
        assert not any(isinstance(n, ast.keyword) and n.arg == "remappings" for n in ast.walk(tree))  # none needed
    assert (
        set(NODES) <= scripts
        and (ROOT / "config" / "fastdds.xml").is_file()
        and (ROOT / "config" / "llara.rviz").is_file()
    )


def test_an_optional_node_is_started_only_where_ros2_run_would_find_it(tmp_path, monkeypatch):
    """launch_support.missing_executable reads the ament index as launch_ros does (prefix, lib/<pkg>/<exe>)."""
    from llara_ros.launch_support import missing_executable

    prefix = tmp_path / "opt_ros"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    for pkg in ("robot_state_publisher", "rviz2"):
        (prefix / "share" / "ament_index" / "resource_index" / "packages" / pkg).write_text("")
    exe = prefix / "lib" / "robot_state_publisher" / "robot_state_publisher"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    monkeypatch.setenv("ROS_DISTRO", "kilted")
    assert missing_executable("robot_state_publisher", "robot_state_publisher") is None
    assert missing_executable("rviz2", "rviz2") == f"rviz2 is installed in {prefix} but has no executable rviz2"
    assert missing_executable("joint_state_publisher_gui", "joint_state_publisher_gui") == (
        "joint_state_publisher_gui is not installed (sudo apt install ros-kilted-joint-state-publisher-gui)"
    )
    exe.chmod(0o644)
    assert "no executable" in missing_executable("robot_state_publisher", "robot_state_publisher")
    monkeypatch.delenv("AMENT_PREFIX_PATH")
    assert "is not installed" in missing_executable("rviz2", "rviz2")


def test_both_launch_files_let_the_user_switch_off_rviz_and_robot_state_publisher_and_on_the_console():
    for path in sorted((ROOT / "launch").glob("*.launch.py")):
        tree = ast.parse(path.read_text())
        declared = {ast.literal_eval(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call)
                    and getattr(n.func, "id", "") == "DeclareLaunchArgument"}  # fmt: skip
        enabled = {ast.literal_eval(k.value) for n in ast.walk(tree) if isinstance(n, ast.Call)
                   and getattr(n.func, "id", "") == "optional_node" for k in n.keywords if k.arg == "enabled"}  # fmt: skip
        assert enabled == {"rviz", "robot_state_publisher"} and enabled <= declared, path.name
        consoles = [
            n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "console_node"
        ]
        assert len(consoles) == 1 and "console" in declared, path.name  # console:=true adds the operator console


def _imported_modules(*packages: str) -> set[str]:
    """Top-level modules imported anywhere in the packages (lazy imports inside functions included)."""
    found = set()
    for pkg in packages:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"llara_core", "llara_ros", "__future__"}


def test_package_xml_declares_exactly_what_the_code_imports():
    """exec_depend = the rosdep keys of every import (and of the message types recorded by name); no extra key."""
    from llara_core.datasets.recording import CONTRACT_TYPES

    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3" and root.findtext("name") == "llara_ros"
    assert root.find("export/build_type").text == "ament_python"
    modules = _imported_modules("llara_core", "llara_ros", "launch")
    modules |= {t.split("/")[0] for t, _ in CONTRACT_TYPES.values()}  # message packages the recorder imports by name
    modules |= {pkg for path in (ROOT / "launch").glob("*.launch.py") for pkg, _ in _launch_nodes(path)} - {"llara_ros"}
    unmapped = sorted(modules - set(DEPENDENCY_OF))
    assert not unmapped, f"say in DEPENDENCY_OF which rosdep key (or pip) provides {unmapped}"
    want = {DEPENDENCY_OF[m] for m in modules} - {"pip"}
    declared = {e.text for e in root.findall("exec_depend")}
    assert declared == want, f"missing {sorted(want - declared)}, not imported {sorted(declared - want)}"
    requirements = (ROOT / "requirements.txt").read_text()
    optional = (ROOT / "requirements-scale.txt").read_text()  # imported lazily, with a message naming the file
    for m in sorted(m for m in modules if DEPENDENCY_OF[m] == "pip"):
        where = optional if m in OPTIONAL else requirements
        assert PIP_NAME.get(m, m) in where, f"{m} is imported but not in its requirements file"
    assert "-r requirements-scale.txt" in (ROOT / "requirements-dev.txt").read_text()  # make test installs it
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    assert (ROOT / "resource" / "llara_ros").is_file()


def test_every_library_error_derives_from_llara_error():
    import inspect
    import pkgutil

    import llara_core
    from llara_core.errors import LlaraError

    for m in pkgutil.walk_packages(llara_core.__path__, "llara_core."):
        mod = importlib.import_module(m.name)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == mod.__name__:
                assert issubclass(obj, LlaraError), f"{m.name}.{name} does not derive from LlaraError"


def test_setup_cfg_installs_scripts_where_ros2_run_looks():
    text = (ROOT / "setup.cfg").read_text()
    assert "script_dir=$base/lib/llara_ros" in text and "install_scripts=$base/lib/llara_ros" in text


def test_every_console_script_resolves_to_a_callable():
    scripts = _setup_call()["CONSOLE_SCRIPTS"]
    assert any(s.startswith("llara =") for s in scripts)
    for spec in scripts:
        target = spec.split("=", 1)[1].strip()
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), spec


def test_llara_core_imports_no_rclpy():
    code = (
        "import sys, pkgutil, importlib, llara_core\n"
        "for m in pkgutil.walk_packages(llara_core.__path__, 'llara_core.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'llara_ros')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    for path in (ROOT / "llara_core").rglob("*.py"):  # also lazy imports inside functions
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            )
            assert not [n for n in names if n.split(".")[0] in ("rclpy", "llara_ros")], (path, names)


def test_cli_parse_and_help():
    llara = [sys.executable, "-m", "llara_core.apps.cli"]
    ok = subprocess.run(
        [*llara, "parse", "Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>."],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and '"pick": [\n        0.1' in ok.stdout
    bad = subprocess.run(
        [*llara, "parse"],
        input="Pick up the object at <b>(0.1, 1.2)</b>, and drop it at <b>(0.3, 0.4)</b>.",
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "out_of_range" in bad.stdout
    assert "demo" in subprocess.run([*llara, "--help"], capture_output=True, text=True).stdout


@pytest.mark.timeout(120)
def test_library_demo_runs_every_offline_stage(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "llara_core.apps.cli", "demo", "--episodes", "1", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "4. bag-converted records equal the simulator's" in res.stdout  # prompts and answers, text included
    mm = float(res.stdout.split("positions: max ")[1].split(" mm")[0])
    assert mm < 2.0  # 3-decimal quantization of a 224x224 view of the table bounds the error at ~1 mm
    assert (tmp_path / "actions.png").stat().st_size > 1000
    assert "7. the shipped model" in res.stdout and (tmp_path / "eval" / "eval.json").is_file()
    assert (tmp_path / "prediction.png").stat().st_size > 1000
    v = subprocess.run(
        [sys.executable, "-m", "llara_core.apps.cli", "validate-dataset", str(tmp_path / "dataset")],
        capture_output=True,
        text=True,
    )
    assert v.returncode == 0 and "inbc" in v.stdout


def test_convert_bags_rejects_unknown_task_kind_before_touching_anything(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "llara_core.apps.cli",
            "convert-bags",
            "x",
            "--out",
            str(tmp_path / "ds"),
            "--kinds",
            "inbc,bogus",
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "unknown task kinds ['bogus']" in res.stderr
    assert not (tmp_path / "ds").exists()
