"""Settings declared once, as dataclass fields with a default and a description.

Node parameters (nodes/*), `mberil record` options and the launch arguments built from them
all read their defaults and help texts from such dataclasses, so a default is never written
twice (test/test_config_defaults.py checks the shipped YAML files against them too).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from mberil_ros.errors import UserError


def setting(default: Any, description: str) -> Any:
    """A dataclass field with its default and what it means (help texts, ROS descriptors)."""
    meta = {"description": description}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_of(cls: type, name: str) -> Any:
    """Field ``name`` of the settings dataclass ``cls`` declared again, same default and
    description: for settings that are passed on (a command's option -> a node parameter)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    default = (field.default_factory() if field.default is dataclasses.MISSING
               else field.default)
    return setting(default, field.metadata["description"])


def defaults(cls: type) -> dict[str, Any]:
    """name -> default of every field of a settings dataclass."""
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls)}


def command_line(cls: type, args: Any, where: str, base: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """A command's options: ``base`` (default: the dataclass defaults), then its KEY=VALUE
    items (``args.settings``; unknown names are an error naming ``where``), then the flags
    given (attributes of ``args`` named like the fields, None when not given)."""
    options = dict(base if base is not None else defaults(cls))
    items = getattr(args, "settings", None) or []
    if items:
        given = apply_overrides({}, items)
        from_mapping(cls, given, where)
        options.update(given)
    options.update({k: getattr(args, k) for k in options if getattr(args, k, None) is not None})
    return options


def descriptions(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("description", "") for f in dataclasses.fields(cls)}


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_mapping(cls: type, data: dict[str, Any], where: str = "", *,
                 source: str | Path | None = None) -> Any:
    """The one mapping -> settings dataclass converter (YAML files, overrides, JSON configs):
    recurses into nested dataclasses; an unknown key or a rejected value is a one-line
    UserError naming ``source`` (the file, when there is one) and the dotted key (``where``:
    the section the mapping sits in)."""
    head = f"{source}: " if source is not None else ""
    if not isinstance(data, dict):
        raise UserError(f"{head}{where or cls.__name__}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise UserError(f"{head}unknown config key {key!r}; known here: {sorted(fields)}")
    hints = _field_types(cls)
    kwargs = {}
    for name, value in data.items():
        nested = _dataclass_in(hints.get(name))
        if nested is not None and isinstance(value, dict):
            value = from_mapping(nested, value, f"{where}.{name}" if where else name,
                                 source=source)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except UserError:
        raise
    except (TypeError, ValueError) as exc:
        raise UserError(f"{head}{where or 'config'}: {exc}") from None


def _dataclass_in(hint: Any) -> type | None:
    if dataclasses.is_dataclass(hint):
        return hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``["steps=10", "algo.network.backbone=mlp"]`` into a nested mapping (values as YAML
    scalars)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"override {item!r}: expected KEY=VALUE")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise UserError(f"override {item!r}: value is not valid YAML") from None
        node = config
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override {item!r}: {part} is not a section")
        node[parts[-1]] = value
    return config


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data
