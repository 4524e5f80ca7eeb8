"""One configuration dataclass per job or node; its CLI flags, YAML schema and ROS parameters come from its fields.

A configuration is a frozen dataclass whose fields are declared with
:func:`setting` (default + help text, optionally ``path=True`` or a fixed
``length``) and validated in ``__post_init__``. Nothing lists its fields a
second time: this module derives from them

- the YAML schema — :func:`from_dict` / :func:`load_yaml` reject unknown keys
  and list the valid ones, coerce lists to tuples and ints to floats, expand
  ``~`` and ``$VARS`` in paths and resolve relative paths against the YAML file;
- the command-line flags — :func:`add_arguments` adds one flag per field
  (``--field-name``; nested configurations as ``--parent.field-name``) whose
  help shows the default, and :func:`overrides_from_args` returns only the
  flags the user gave, so they override a YAML file without resetting it;
- the ROS parameters — :func:`field_specs` gives name, type, default and
  description of each (nested fields become dotted parameter names, which is
  how a ROS params file nests them); ``llara_ros.params`` declares them on a
  node. It lives in llara_ros because this package never imports rclpy.

Supported field types: ``str``, ``int``, ``float``, ``bool``, ``Literal[...]``
of strings, ``tuple[str | int | float, ...]``, ``dict[str, float]`` (written
``key=value,key=value`` on the command line), any of these ``| None``, and
nested configuration dataclasses. Written for this project rather than taken
from draccus/tyro: neither generates ROS parameter descriptors, and the
YAML/flag/parameter triple must come from one field list.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from llara_core.errors import ConfigError
from llara_core.fileio import expand_path

T = TypeVar("T")
Kind = Literal["str", "int", "float", "bool", "str_list", "int_list", "float_list", "mapping"]
_SCALARS: dict[Any, Kind] = {str: "str", int: "int", float: "float", bool: "bool"}
_LISTS: dict[Any, Kind] = {str: "str_list", int: "int_list", float: "float_list"}
_PY: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}


def setting(default: Any, help: str, *, path: bool = False, length: int | None = None) -> Any:
    """A configuration field: its default, the help text every interface shows, and how to read it.

    ``path=True`` expands ``~``/``$VARS`` and resolves relative paths against the
    YAML file that set it; ``length`` fixes the number of items of a tuple.
    Mutable defaults (lists, dicts) are not allowed: configurations are frozen.
    """
    if isinstance(default, (list, dict, set)):
        raise TypeError("configuration defaults must be immutable (use a tuple, or None)")
    return dataclasses.field(default=default, metadata={"help": help, "path": path, "length": length})


@dataclass(frozen=True)
class FieldSpec:
    """One leaf field of a configuration, flattened: ``name`` is dotted for nested configurations."""

    name: str
    kind: Kind
    default: Any
    help: str
    optional: bool = False
    choices: tuple[str, ...] | None = None
    path: bool = False
    length: int | None = None

    @property
    def flag(self) -> str:
        return "--" + ".".join(p.replace("_", "-") for p in self.name.split("."))

    def describe(self) -> str:
        """The help text with the default and the choices, as every interface prints it."""
        extra = []
        if self.choices:
            extra.append("one of " + ", ".join(self.choices))
        if self.default is None:
            extra.append("default: unset")
        elif self.kind == "mapping":
            extra.append(f"default: {format_mapping(self.default) or 'empty'}")
        elif isinstance(self.default, tuple):
            extra.append(f"default: {' '.join(map(str, self.default)) or 'empty'}")
        else:
            extra.append(f"default: {self.default}")
        return f"{self.help} ({'; '.join(extra)})"


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
        raise TypeError(f"unsupported union {tp}")
    return tp, False


def _classify(tp: Any) -> tuple[Kind, tuple[str, ...] | None]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _SCALARS:
        return _SCALARS[tp], None
    if origin is Literal:
        if not all(isinstance(a, str) for a in args):
            raise TypeError(f"only string Literals are supported, got {tp}")
        return "str", tuple(args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and args[0] in _LISTS:
        return _LISTS[args[0]], None
    if origin is dict and args == (str, float):
        return "mapping", None
    raise TypeError(f"unsupported configuration field type {tp}")


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    return typing.get_type_hints(typing.cast(Any, cls))


def _fields(cls: type) -> list[dataclasses.Field[Any]]:
    if not _is_config(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    return [f for f in dataclasses.fields(cls) if f.init]


@functools.cache
def field_specs(cls: Any) -> tuple[FieldSpec, ...]:
    """Every leaf field of ``cls`` (nested configurations flattened with dotted names), in declaration order."""
    out: list[FieldSpec] = []
    for f in _fields(cls):
        tp, optional = _unwrap_optional(_hints(typing.cast(Any, cls))[f.name])
        if _is_config(tp):
            out.extend(dataclasses.replace(s, name=f"{f.name}.{s.name}") for s in field_specs(tp))
            continue
        if "help" not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} has no help text: declare it with llara_core.config.setting()")
        kind, choices = _classify(tp)
        default = f.default if f.default is not dataclasses.MISSING else None
        md = f.metadata
        out.append(FieldSpec(f.name, kind, default, md["help"], optional, choices, md["path"], md["length"]))
    return tuple(out)


def check_choices(cfg: Any) -> None:
    """ValueError when a ``Literal`` field of ``cfg`` holds a value outside its choices (call in ``__post_init__``)."""
    for spec in field_specs(typing.cast(Any, type(cfg))):
        if spec.choices and "." not in spec.name:
            value = getattr(cfg, spec.name)
            if value is not None and value not in spec.choices:
                raise ValueError(f"{spec.name} must be one of {', '.join(spec.choices)}, not {value!r}")


@functools.cache
def _spec_map(cls: Any) -> dict[str, FieldSpec]:
    return {s.name: s for s in field_specs(cls)}


def format_mapping(m: Mapping[str, float] | None) -> str:
    return ",".join(f"{k}={v:g}" for k, v in (m or {}).items())


def parse_mapping(text: str) -> dict[str, float]:
    """``"inbc=1,localization=0.5"`` -> ``{"inbc": 1.0, "localization": 0.5}``; a bare key means 1."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = float(value) if value.strip() else 1.0
        except ValueError:
            raise ConfigError(f"{part!r}: expected key=number") from None
    return out


def _coerce(spec: FieldSpec, value: Any, base_dir: str | os.PathLike[str] | None) -> Any:
    """A YAML/CLI/ROS value -> the field's Python type, or ConfigError naming the field and what it expects."""
    if value is None:
        if spec.optional or spec.default is None:
            return None
        raise ConfigError(f"{spec.name}: a value is required")
    if spec.kind == "mapping":
        if isinstance(value, str):
            value = parse_mapping(value)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{spec.name}: expected a mapping of name: number, got {value!r}")
        try:
            return {str(k): float(v) for k, v in value.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"{spec.name}: every value must be a number, got {dict(value)}") from None
    if spec.kind.endswith("_list"):
        if isinstance(value, str):
            value = value.split(",") if value else []
        if not isinstance(value, Sequence):
            raise ConfigError(f"{spec.name}: expected a list, got {value!r}")
        if spec.kind == "str_list":  # "a,b" and ["a", "b"] alike (flags: --kinds inbc,d_inbc or --kinds inbc d_inbc)
            value = [part.strip() for v in value for part in str(v).split(",") if part.strip()]
        item = FieldSpec(spec.name, typing.cast(Kind, spec.kind[: -len("_list")]), None, "", path=spec.path)
        out = tuple(_coerce(item, v, base_dir) for v in value)
        if spec.length is not None and len(out) != spec.length:
            raise ConfigError(f"{spec.name}: expected {spec.length} values, got {len(out)}")
        return out
    py = _PY[spec.kind]
    if spec.kind == "bool":
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{spec.name}: expected true or false, got {value!r}")
        return value
    if spec.kind == "float" and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{spec.name}: expected a number, got {value!r}") from None
    if spec.kind == "int" and isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(f"{spec.name}: expected an integer, got {value!r}") from None
    if not isinstance(value, py) or isinstance(value, bool) != (py is bool):
        raise ConfigError(f"{spec.name}: expected {spec.kind}, got {value!r}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"{spec.name}: {value!r} is not one of {', '.join(spec.choices)}")
    if spec.path and value:
        return expand_path(str(value), base_dir)
    return value


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1, "a.c": 2}`` -> ``{"a": {"b": 1, "c": 2}}`` (dotted keys, as ROS parameters and flags name nested fields)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *heads, leaf = key.split(".")
        node = out
        for h in heads:
            node = node.setdefault(h, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{h}: both a value and nested keys given")
        if isinstance(value, Mapping) and isinstance(node.get(leaf), dict):
            node[leaf].update(_nest(value))
        else:
            node[leaf] = _nest(value) if isinstance(value, Mapping) and _has_dots(value) else value
    return out


def _has_dots(m: Mapping[str, Any]) -> bool:
    return any(isinstance(k, str) and "." in k for k in m)


def from_dict(
    cls: type[T], data: Mapping[str, Any] | None, base: T | None = None, base_dir: str | os.PathLike[str] | None = None
) -> T:
    """Build ``cls`` from a mapping (YAML, flags, parameters); keys missing from it keep ``base``'s values.

    Unknown keys are an error that lists the valid ones; dotted keys name nested
    fields. Validation runs in the dataclass's ``__post_init__``; a ValueError
    there becomes a :class:`ConfigError`.
    """
    data = _nest(dict(data or {}))
    hints = _hints(typing.cast(Any, cls))
    known = {f.name: f for f in _fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {cls.__name__}; valid keys: {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = _unwrap_optional(hints[name])[0]
        if _is_config(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"{name}: expected a mapping of {sorted(f.name for f in _fields(tp))}")
            sub = getattr(base, name) if base is not None else None
            try:
                kwargs[name] = from_dict(tp, value, sub, base_dir)
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
            continue
        spec = _spec_map(typing.cast(Any, cls))[name]
        kwargs[name] = _coerce(spec, value, base_dir)
    try:
        return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)  # type: ignore[type-var]
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc


def load_yaml(cls: type[T], path: str | os.PathLike[str], section: str | None = None, base: T | None = None) -> T:
    """``cls`` from a YAML file (or one top-level ``section`` of it); relative paths are relative to the file."""
    import yaml

    path = Path(expand_path(str(path)))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if section is not None:
        data = data.get(section) or {} if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping")
    try:
        return from_dict(cls, data, base, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"config {path}: {exc}") from exc


ROS_BUILTIN_PARAMETERS = ("use_sim_time", "qos_overrides", "start_type_description_service")


def load_ros_params(cls: type[T], path: str | os.PathLike[str], node: str, ignore: Sequence[str] = ()) -> T:
    """``cls`` from a ROS parameters file: ``<node>: {ros__parameters: {…}}`` (``/**`` applies to every node).

    ``ignore``: top-level keys that belong to the node but not to ``cls`` (e.g.
    the action node's executor settings when ``llara plan`` reads its file).
    """
    import yaml

    path = Path(expand_path(str(path)))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read parameters file {path}: {exc}") from exc
    params: dict[str, Any] = {}
    for key in ("/**", node, f"/{node}"):
        section = data.get(key) if isinstance(data, dict) else None
        if isinstance(section, dict):
            params.update(section.get("ros__parameters") or {})
    for builtin in (*ROS_BUILTIN_PARAMETERS, *ignore):  # every rclpy node has the builtins; not the config's
        params.pop(builtin, None)
    if not params and node not in data:
        raise ConfigError(f"{path} has no parameters for {node} (expected '{node}: {{ros__parameters: ...}}')")
    try:
        return from_dict(cls, params, base_dir=path.resolve().parent)
    except ConfigError as exc:
        raise ConfigError(f"{path} ({node}): {exc}") from exc


def load_node_config(cls: type[T], path: str | os.PathLike[str], node: str, ignore: Sequence[str] = ()) -> T:
    """``cls`` from a node's parameters as a user has them: a ROS parameters file (``<node>: {ros__parameters:
    …}``, read by :func:`load_ros_params`) or a plain YAML of the same keys. ``ignore``: keys of the node that
    are not ``cls``'s (both forms)."""
    import yaml

    path = Path(expand_path(str(path)))
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read parameters file {path}: {exc}") from exc
    if isinstance(raw, dict) and any(isinstance(v, dict) and "ros__parameters" in v for v in raw.values()):
        return load_ros_params(cls, path, node, ignore)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of parameters")
    return from_dict(cls, {k: v for k, v in raw.items() if k not in ignore}, base_dir=path.resolve().parent)


def to_dict(cfg: Any) -> dict[str, Any]:
    """A configuration as plain nested data (tuples become lists): what YAML, JSON and manifests hold."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {
        f.name: to_dict(v) if _is_config(type(v)) else plain(v)
        for f in _fields(type(cfg))
        for v in [getattr(cfg, f.name)]
    }


def schema(cls: type) -> dict[str, Any]:
    """The YAML schema of ``cls`` as JSON Schema (nested configurations as nested objects, no extra keys)."""
    json_type = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
    props: dict[str, Any] = {}
    for f in _fields(cls):
        tp, _ = _unwrap_optional(_hints(typing.cast(Any, cls))[f.name])
        if _is_config(tp):
            props[f.name] = schema(tp)
            continue
        spec = _spec_map(typing.cast(Any, cls))[f.name]
        entry: dict[str, Any]
        if spec.kind == "mapping":
            entry = {"type": "object", "additionalProperties": {"type": "number"}}
        elif spec.kind.endswith("_list"):
            entry = {"type": "array", "items": {"type": json_type[spec.kind[:-5]]}}
            if spec.length:
                entry["minItems"] = entry["maxItems"] = spec.length
        else:
            entry = {"type": json_type[spec.kind]}
        if spec.choices:
            entry["enum"] = list(spec.choices)
        if spec.optional or spec.default is None:
            entry = {"anyOf": [entry, {"type": "null"}]}
        entry["description"] = spec.help
        entry["default"] = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        props[f.name] = entry
    return {"title": cls.__name__, "type": "object", "properties": props, "additionalProperties": False}


# -- command line ------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, cls: type, exclude: Sequence[str] = ()) -> None:
    """One flag per leaf field of ``cls`` (not those named in ``exclude``), each with its help and default.

    Every flag defaults to None (argparse), so :func:`overrides_from_args` sees
    only what the user typed and a YAML file's values survive.
    """
    group = parser.add_argument_group(f"{cls.__name__} (also YAML keys; nested keys as dotted flags)")
    for s in field_specs(cls):
        if s.name in exclude or s.name.split(".")[0] in exclude:
            continue
        kw: dict[str, Any] = {
            "dest": s.name,
            "default": None,
            "help": s.describe().replace("%", "%%"),
        }  # argparse formats help
        if s.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif s.kind.endswith("_list"):
            kw["nargs"] = s.length or "*"
            kw["type"] = _PY[s.kind[:-5]]
            kw["metavar"] = s.kind[:-5].upper()
        elif s.kind == "mapping":
            kw["metavar"] = "K=V,..."
        else:
            kw["type"] = _PY[s.kind]
            if s.choices:
                kw["choices"] = s.choices
        group.add_argument(s.flag, **kw)


def overrides_from_args(cls: type, args: argparse.Namespace, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The fields the user set on the command line, as dotted keys -> values (for :func:`from_dict`)."""
    out = {}
    for s in field_specs(cls):
        if s.name in exclude or s.name.split(".")[0] in exclude:
            continue
        value = getattr(args, s.name, None)
        if value is not None:
            out[s.name] = value
    return out


def from_args(
    cls: type[T], args: argparse.Namespace, config_file: str | None = None, section: str | None = None, **fixed: Any
) -> T:
    """``cls`` from an optional YAML file, then the flags the user gave, then ``fixed`` values (paths relative to CWD)."""
    base = load_yaml(cls, config_file, section) if config_file else None
    flags = {
        **overrides_from_args(cls, args, exclude=tuple(fixed)),
        **{k: v for k, v in fixed.items() if v is not None},
    }
    return (
        from_dict(cls, flags, base, base_dir=Path.cwd())
        if base is not None
        else from_dict(cls, flags, base_dir=Path.cwd())
    )
