"""Sample a JointTrajectory the way joint_trajectory_controller does (position interface).

The trajectory starts at its header stamp (0 = on receipt). Before the first point the
controller moves from the state it held on receipt; between points it interpolates; after the
last point it holds it. We interpolate linearly in position (the controller's default with
positions only is a spline; linear is the same at the points and never overshoots).
Works on any object shaped like trajectory_msgs/JointTrajectory (no rclpy import here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


class TrajectoryInterpolator:
    def __init__(self, joint_names: list[str], times: np.ndarray, positions: np.ndarray) -> None:
        self.joint_names = list(joint_names)
        self.times = times  # absolute sim times, first entry = start (current state)
        self.positions = positions  # (len(times), len(joint_names))

    @classmethod
    def from_message(cls, msg, now: float, current: Mapping[str, float]) -> TrajectoryInterpolator:
        names = list(msg.joint_names)
        if not names or len(set(names)) != len(names):
            raise ValueError("joint_names must be non-empty and unique")
        unknown = [n for n in names if n not in current]
        if unknown:
            raise ValueError(f"unknown joints {unknown}")
        if not msg.points:
            raise ValueError("no points")
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        start = now if stamp == 0 else stamp
        times, rows = [start], [[float(current[n]) for n in names]]
        for i, point in enumerate(msg.points):
            if len(point.positions) != len(names):
                raise ValueError(f"point {i}: {len(point.positions)} positions for "
                                 f"{len(names)} joints")
            if not all(math.isfinite(v) for v in point.positions):
                raise ValueError(f"point {i}: NaN/inf position")
            t = start + point.time_from_start.sec + point.time_from_start.nanosec * 1e-9
            if t < times[-1] or (i > 0 and t == times[-1]):
                raise ValueError(f"point {i}: time_from_start not increasing")
            times.append(t)
            rows.append([float(v) for v in point.positions])
        return cls(names, np.array(times), np.array(rows))

    def sample(self, t: float) -> dict[str, float]:
        """Target positions at sim time ``t``."""
        values = [np.interp(t, self.times, self.positions[:, j])
                  for j in range(len(self.joint_names))]
        return {n: float(v) for n, v in zip(self.joint_names, values, strict=True)}
