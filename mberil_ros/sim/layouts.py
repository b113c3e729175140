"""User-written task layouts (YAML, docs/task.md) -> Episode objects.

    layouts:
      - name: shelf_left            # optional
        arm: right                  # right | left | both
        initial_joints: {RARM_JOINT0: -0.01, RARM_JOINT2: -1.745}   # by name; others: init_rtm
        target: [0.35, -0.20, 0.05]          # both arms: {right: [...], left: [...]}
        obstacles:
          - {type: box, position: [0.30, -0.10, 0.05], size: [0.05, 0.05, 0.20]}
          - {type: sphere, position: [0.25, -0.25, 0.10], radius: 0.04}

Any problem raises UserError naming the file and the field, e.g.
``layouts.yaml: layouts[0].target: expected 3 numbers``.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import yaml

from mberil_ros.errors import UserError
from mberil_ros.sim.model import INIT_RTM
from mberil_ros.sim.scene import Episode, Obstacle
from mberil_ros.sim.spaces import ARMS, MAX_OBSTACLES


class _Bad(Exception):
    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")


def _vec(value, field: str, n: int = 3, positive: bool = False) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise _Bad(field, f"expected {n} numbers, got {value!r}")
    return tuple(_num(v, f"{field}[{i}]", positive) for i, v in enumerate(value))


def _num(value, field: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(field, f"expected a number, got {value!r}")
    if positive and value <= 0:
        raise _Bad(field, f"must be > 0, got {value!r}")
    return float(value)


def _obstacle(item, field: str) -> Obstacle:
    if not isinstance(item, dict):
        raise _Bad(field, "expected a mapping with type and position")
    kind = item.get("type")
    if kind not in ("box", "sphere"):
        raise _Bad(f"{field}.type", f"expected box or sphere, got {kind!r}")
    pos = _vec(item.get("position"), f"{field}.position")
    if kind == "box":
        return Obstacle.box(pos, _vec(item.get("size"), f"{field}.size", positive=True))
    return Obstacle.sphere(pos, _num(item.get("radius"), f"{field}.radius", positive=True))


def _layout(item, i: int) -> Episode:
    f = f"layouts[{i}]"
    if not isinstance(item, dict):
        raise _Bad(f, "expected a mapping")
    unknown = set(item) - {"name", "arm", "initial_joints", "target", "obstacles"}
    if unknown:
        raise _Bad(f, f"unknown keys {sorted(unknown)}")
    name = str(item.get("name", f"layout{i}"))
    arm = item.get("arm", "right")
    if arm not in ARMS:
        raise _Bad(f"{f}.arm", f"expected one of {', '.join(ARMS)}, got {arm!r}")
    joints = item.get("initial_joints") or {}
    if not isinstance(joints, dict):
        raise _Bad(f"{f}.initial_joints", "expected a mapping joint name -> radians")
    initial = {}
    for jn, v in joints.items():
        if jn not in INIT_RTM:
            raise _Bad(f"{f}.initial_joints.{jn}", "unknown joint")
        initial[jn] = _num(v, f"{f}.initial_joints.{jn}")
    sides = ("right", "left") if arm == "both" else (arm,)
    target = item.get("target")
    if target is None:
        raise _Bad(f"{f}.target", "missing")
    if arm == "both":
        if not isinstance(target, dict) or set(target) != {"right", "left"}:
            raise _Bad(f"{f}.target", "arm both needs {right: [x, y, z], left: [x, y, z]}")
        targets = {s: _vec(target[s], f"{f}.target.{s}") for s in sides}
    else:
        targets = {arm: _vec(target, f"{f}.target")}
    obstacles = item.get("obstacles") or []
    if not isinstance(obstacles, list):
        raise _Bad(f"{f}.obstacles", "expected a list")
    if len(obstacles) > MAX_OBSTACLES:
        raise _Bad(f"{f}.obstacles", f"at most {MAX_OBSTACLES} obstacles, got {len(obstacles)}")
    obs = tuple(_obstacle(o, f"{f}.obstacles[{k}]") for k, o in enumerate(obstacles))
    return Episode(arm=arm, initial_joints=initial, targets=targets, obstacles=obs, name=name,
                   suite="layouts")


def load_layouts(path: str | Path, check: bool = True) -> list[Episode]:
    """Read a layouts YAML file; raise UserError naming the file and field on bad content.
    ``check`` also rejects layouts the arm cannot fairly run (``ReachingTask.layout_problem``:
    an unreachable target, an obstacle overlapping the start pose, ...)."""
    episodes = _read_layouts(Path(path))
    if check:
        from mberil_ros.sim.task import ReachingTask

        tasks = {arm: ReachingTask("train", arm) for arm in {e.arm for e in episodes}}
        for i, episode in enumerate(episodes):
            problem = tasks[episode.arm].layout_problem(episode)
            if problem:
                raise UserError(f"{path}: layouts[{i}].{problem}")
    return episodes


def _read_layouts(path: Path) -> list[Episode]:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UserError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict) or not isinstance(data.get("layouts"), list):
        raise UserError(f"{path}: layouts: expected a top-level 'layouts:' list")
    if not data["layouts"]:
        raise UserError(f"{path}: layouts: the list is empty")
    try:
        return [_layout(item, i) for i, item in enumerate(data["layouts"])]
    except _Bad as exc:
        raise UserError(f"{path}: {exc}") from None


def episode_to_dict(episode: Episode) -> dict:
    """The layouts-YAML form of one episode (inverse of :func:`episode_from_dict`).

    The ROS sim node publishes this as JSON on /task/layout (and in its ~/reset answer), so
    a demonstrator in another process gets the whole episode, name and start joints included.
    """
    if episode.arm == "both":
        target = {s: list(episode.targets[s]) for s in ("right", "left")}
    else:
        target = list(episode.targets[episode.arm])
    obstacles = []
    for ob in episode.obstacles:
        if ob.type == "sphere":
            obstacles.append({"type": "sphere", "position": list(ob.position),
                              "radius": ob.radius})
        else:
            obstacles.append({"type": "box", "position": list(ob.position),
                              "size": list(ob.size)})
    return {"name": episode.name, "arm": episode.arm,
            "initial_joints": dict(episode.initial_joints), "target": target,
            "obstacles": obstacles}


def episode_from_dict(item: dict, source: str = "<layout>", suite: str = "layouts") -> Episode:
    """Validate one layouts-YAML mapping into an Episode; UserError names ``source``."""
    try:
        episode = _layout(item, 0)
    except _Bad as exc:
        raise UserError(f"{source}: {exc}") from None
    return replace(episode, suite=suite)
