"""Settings declared once, as dataclass fields with a default and a description.

Node parameters (nodes/*), `mberil record` options and the launch arguments built from them
all read their defaults and help texts from such dataclasses, so a default is never written
twice (test/test_config_defaults.py checks the shipped YAML files against them too).
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any


def setting(default: Any, description: str) -> Any:
    """A dataclass field with its default and what it means (help texts, ROS descriptors)."""
    meta = {"description": description}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def defaults(cls: type) -> dict[str, Any]:
    """name -> default of every field of a settings dataclass."""
    instance = cls()
    return {f.name: getattr(instance, f.name) for f in dataclasses.fields(cls)}


def descriptions(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("description", "") for f in dataclasses.fields(cls)}
