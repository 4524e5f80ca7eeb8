"""ROS parameters from a configuration dataclass (llara_core.config): declared with descriptors, validated once.

Every node declares its parameters here, from the one dataclass that also
gives the CLI flags and the YAML schema, so no parameter is listed by hand.
Nested configurations become dotted parameter names (``topics.image``), which
is how a ROS parameters file nests them under ``ros__parameters``.

Floats are declared with ``dynamic_typing`` so that ``table_height: 0`` in a
params file is read as 0.0 instead of being refused by rclpy's type check;
:func:`llara_core.config.from_dict` then coerces and validates every value.
"""

from __future__ import annotations

from typing import Any, TypeVar

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter

from llara_core.config import FieldSpec, field_specs, format_mapping, from_dict
from llara_core.errors import ConfigError

T = TypeVar("T")

_TYPES: dict[str, tuple[Parameter.Type, int]] = {
    "str": (Parameter.Type.STRING, ParameterType.PARAMETER_STRING),
    "int": (Parameter.Type.INTEGER, ParameterType.PARAMETER_INTEGER),
    "float": (Parameter.Type.DOUBLE, ParameterType.PARAMETER_DOUBLE),
    "bool": (Parameter.Type.BOOL, ParameterType.PARAMETER_BOOL),
    "str_list": (Parameter.Type.STRING_ARRAY, ParameterType.PARAMETER_STRING_ARRAY),
    "int_list": (Parameter.Type.INTEGER_ARRAY, ParameterType.PARAMETER_INTEGER_ARRAY),
    "float_list": (Parameter.Type.DOUBLE_ARRAY, ParameterType.PARAMETER_DOUBLE_ARRAY),
    "mapping": (Parameter.Type.STRING, ParameterType.PARAMETER_STRING),
}


def _ros_default(spec: FieldSpec) -> Any:
    """The parameter's initial value, or None where ROS cannot hold the default (unset, empty list)."""
    if spec.default is None:
        return None
    if spec.kind == "mapping":
        return format_mapping(spec.default)
    if spec.kind.endswith("_list"):
        return list(spec.default) or None
    return spec.default


def declare_config(node: Node, cls: type, use_defaults: bool = True, read_only: bool = True) -> list[str]:
    """Declare one parameter per field of ``cls`` with its description, type and choices; returns the names.

    ``read_only`` (the default): the node reads its configuration once, at
    start, so ``ros2 param set`` is refused instead of succeeding and changing
    nothing.

    With ``use_defaults=False`` every parameter is declared by type only
    (uninitialized): :func:`read_config` then returns only what the user set —
    for nodes whose parameters override a YAML file.
    """
    names = []
    for spec in field_specs(cls):
        ptype, desc_type = _TYPES[spec.kind]
        dynamic = spec.kind == "float"  # rclpy refuses a declared type together with dynamic typing
        desc = ParameterDescriptor(
            description=spec.describe(),
            type=ParameterType.PARAMETER_NOT_SET if dynamic else desc_type,
            dynamic_typing=dynamic,
            additional_constraints=f"one of {', '.join(spec.choices)}" if spec.choices else "",
            read_only=read_only,
        )
        default = _ros_default(spec) if use_defaults else None
        try:
            initial = default if default is not None or dynamic else ptype
            node.declare_parameter(spec.name, initial, desc)
        except ParameterException as exc:
            raise ConfigError(f"parameter {spec.name!r}: {exc} (expected {spec.kind})") from exc
        names.append(spec.name)
    return names


def set_parameters(node: Node, cls: type) -> dict[str, Any]:
    """The parameters of ``cls`` that hold a value (set by the user, or a declared default), as dotted keys."""
    out: dict[str, Any] = {}
    for spec in field_specs(cls):
        try:
            value = node.get_parameter(spec.name).value
        except ParameterUninitializedException:
            continue
        if value is not None:
            out[spec.name] = list(value) if spec.kind.endswith("_list") else value
    return out


def read_config(node: Node, cls: type[T], base: T | None = None) -> T:
    """``cls`` from the node's parameters over ``base`` (validated; ConfigError names the bad parameter)."""
    return from_dict(cls, set_parameters(node, cls), base)
