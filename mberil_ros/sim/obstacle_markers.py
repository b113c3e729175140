"""The /task/obstacles contract: visualization_msgs/MarkerArray <-> Obstacle objects.

What sim_node publishes and what a lab may publish from its own perception, so RViz shows
exactly what the policy sees. Each MarkerArray message is the complete obstacle set at its
time (the converter samples the newest message only); within it markers apply in order:

- DELETEALL (3) forgets every marker before it; publishers start with one so RViz drops
  obstacles of the previous episode; DELETE (2) forgets the marker with that ns and id;
- ADD/MODIFY (0) sets the obstacle (ns, id); type CUBE (1) or SPHERE (2) only;
- header.frame_id must be "WAIST"; pose.position is the centre; scale holds the full edge
  lengths (a sphere's diameter, equal on all three axes); boxes are axis-aligned (identity
  orientation; an all-zero quaternion counts as identity, as in RViz);
- observation slots are filled in ascending (ns, id) order; sim_node uses ns "obstacles"
  and id = slot index, stable within an episode.

Nothing here imports ROS: the functions read rclpy and rosbags messages alike by field name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mberil_ros.sim.scene import Obstacle

FRAME_ID = "WAIST"
NAMESPACE = "obstacles"
CUBE, SPHERE = 1, 2
ADD, DELETE, DELETEALL = 0, 2, 3
MARKER_TYPES = {"box": CUBE, "sphere": SPHERE}


def marker_scale(ob: Obstacle) -> tuple[float, float, float]:
    """Marker.scale of an obstacle: full edge lengths, a sphere's diameter three times."""
    return tuple(float(v) for v in ob.size)


def _obstacle(marker: object, where: str) -> Obstacle:
    frame = marker.header.frame_id
    if frame != FRAME_ID:
        raise ValueError(f"{where}.header.frame_id is {frame!r}, expected {FRAME_ID!r}")
    p, s = marker.pose.position, marker.scale
    position = (float(p.x), float(p.y), float(p.z))
    scale = (float(s.x), float(s.y), float(s.z))
    for axis, v in zip("xyz", scale, strict=True):
        if not v > 0 or not math.isfinite(v):
            raise ValueError(f"{where}.scale.{axis} must be a finite length > 0, got {v}")
    if marker.type == SPHERE:
        if not math.isclose(scale[0], scale[1], rel_tol=1e-6) or not math.isclose(
                scale[0], scale[2], rel_tol=1e-6):
            raise ValueError(f"{where}.scale: a SPHERE needs equal x, y, z (diameter), got "
                             f"{list(scale)}")
        return Obstacle.sphere(position, scale[0] / 2.0)
    if marker.type != CUBE:
        raise ValueError(f"{where}.type is {marker.type}; obstacles are CUBE ({CUBE}) or "
                         f"SPHERE ({SPHERE})")
    q = marker.pose.orientation
    quat = (float(q.x), float(q.y), float(q.z), float(q.w))
    if any(quat) and not (abs(abs(quat[3]) - 1.0) < 1e-6 and max(map(abs, quat[:3])) < 1e-6):
        raise ValueError(f"{where}.pose.orientation must be identity (boxes are "
                         f"axis-aligned in the WAIST frame), got {list(quat)}")
    return Obstacle.box(position, scale)


def obstacles_from_markers(markers: Sequence[object], max_obstacles: int) -> list[Obstacle]:
    """The obstacles a MarkerArray's ``markers`` describe, in slot order.

    Raises ValueError naming the offending field, e.g. ``markers[1].scale.x``.
    """
    live: dict[tuple[str, int], Obstacle] = {}
    for i, marker in enumerate(markers):
        where = f"markers[{i}]"
        action = marker.action
        if action == DELETEALL:
            live.clear()
        elif action == DELETE:
            live.pop((marker.ns, marker.id), None)
        elif action == ADD:
            live[(marker.ns, marker.id)] = _obstacle(marker, where)
        else:
            raise ValueError(f"{where}.action is {action}; expected ADD ({ADD}), DELETE "
                             f"({DELETE}) or DELETEALL ({DELETEALL})")
    if len(live) > max_obstacles:
        raise ValueError(f"{len(live)} obstacle markers but max_obstacles is {max_obstacles}")
    return [live[key] for key in sorted(live)]
