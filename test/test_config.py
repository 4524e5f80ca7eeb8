"""One configuration dataclass gives the CLI flags, the YAML schema and the ROS parameters (llara_core.config)."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Literal

import pytest

from llara_core.config import add_arguments, field_specs, from_args, from_dict, load_yaml, schema, setting, to_dict
from llara_core.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    frame: str = setting("base_link", "the frame")
    pose: tuple[float, ...] | None = setting(None, "x y z", length=3)


@dataclass(frozen=True)
class Job:
    name: str = setting("job", "a name")
    rate: float = setting(2.0, "a rate in Hz")
    count: int = setting(3, "how many")
    fast: bool = setting(False, "go fast")
    mode: Literal["a", "b"] = setting("a", "the mode")
    topics: tuple[str, ...] = setting(("/x",), "topics")
    mix: dict[str, float] | None = setting(None, "ratios")
    out: str | None = setting(None, "output folder", path=True)
    inner: Inner = dataclasses.field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


def test_yaml_keys_are_checked_coerced_and_validated(tmp_path, monkeypatch):
    monkeypatch.setenv("LLARA_TEST_DIR", "/data")
    cfg = from_dict(Job, {"rate": 5, "topics": ["/a", "/b"], "inner": {"pose": [1, 2, 3]}, "out": "$LLARA_TEST_DIR/o"})
    assert cfg.rate == 5.0 and isinstance(cfg.rate, float) and cfg.topics == ("/a", "/b")
    assert cfg.inner.pose == (1.0, 2.0, 3.0) and cfg.inner.frame == "base_link" and cfg.out == "/data/o"
    assert from_dict(Job, {"inner.frame": "world"}).inner.frame == "world"  # dotted keys, as ROS names them
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['rat'\].*valid keys: \[.*'rate'"):
        from_dict(Job, {"rat": 1})
    with pytest.raises(ConfigError, match="inner: unknown key"):
        from_dict(Job, {"inner": {"fram": "x"}})
    with pytest.raises(ConfigError, match="mode: 'c' is not one of a, b"):
        from_dict(Job, {"mode": "c"})
    with pytest.raises(ConfigError, match="rate must be > 0"):
        from_dict(Job, {"rate": 0})
    with pytest.raises(ConfigError, match="pose: expected 3 values"):
        from_dict(Job, {"inner": {"pose": [1, 2]}})
    with pytest.raises(ConfigError, match="count: expected int"):
        from_dict(Job, {"count": 1.5})
    (tmp_path / "c.yaml").write_text("job:\n  out: rel/dir\n  mix: {inbc: 1, localization: 0.5}\n")
    loaded = load_yaml(Job, tmp_path / "c.yaml", section="job")
    assert loaded.out == str(tmp_path / "rel/dir") and loaded.mix == {"inbc": 1.0, "localization": 0.5}
    assert from_dict(Job, to_dict(loaded)) == loaded


def test_flags_override_a_file_only_where_given(tmp_path):
    p = argparse.ArgumentParser()
    add_arguments(p, Job)
    (tmp_path / "c.yaml").write_text("count: 7\nrate: 9.0\n")
    args = p.parse_args(["--rate", "4", "--fast", "--inner.frame", "world", "--mix", "inbc=1,detection=0.25"])
    cfg = from_args(Job, args, str(tmp_path / "c.yaml"))
    assert (cfg.count, cfg.rate, cfg.fast, cfg.inner.frame) == (7, 4.0, True, "world")
    assert cfg.mix == {"inbc": 1.0, "detection": 0.25}
    help_text = p.format_help()
    assert "--inner.frame" in help_text and "default: base_link" in help_text and "one of a, b" in help_text


def test_every_field_needs_a_help_text():
    @dataclass(frozen=True)
    class Bad:
        x: int = 1

    with pytest.raises(TypeError, match="no help text"):
        field_specs(Bad)


@pytest.mark.ros
def test_a_new_field_appears_in_help_schema_and_node_parameters():
    """The contract of the structure: add a field once, and every interface has it."""
    import rclpy

    from llara_ros.params import declare_config, read_config

    Extended = dataclasses.make_dataclass(
        "Extended",
        [("brand_new_knob", float, setting(0.25, "a knob nobody listed anywhere else"))],
        bases=(Job,),
        frozen=True,
    )
    p = argparse.ArgumentParser()
    add_arguments(p, Extended)
    assert "--brand-new-knob" in p.format_help() and "a knob nobody listed" in p.format_help()
    assert schema(Extended)["properties"]["brand_new_knob"]["default"] == 0.25
    assert schema(Extended)["properties"]["inner"]["properties"]["frame"]["type"] == "string"
    rclpy.init(args=["--ros-args", "-p", "brand_new_knob:=1", "-p", "inner.frame:=tool0", "-p", "topics:=[/a]"])
    try:
        node = rclpy.create_node("config_probe")
        declare_config(node, Extended)
        desc = node.describe_parameter("brand_new_knob")
        assert "a knob nobody listed" in desc.description
        cfg = read_config(node, Extended)
        assert cfg.brand_new_knob == 1.0 and cfg.inner.frame == "tool0" and cfg.topics == ("/a",)
        assert cfg.rate == 2.0 and cfg.out is None
        node.destroy_node()
    finally:
        rclpy.shutdown()
