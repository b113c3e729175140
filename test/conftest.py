"""Shared test set-up: isolate DDS discovery so parallel runs never see each other's nodes."""

from __future__ import annotations

import os
import random

# Set before any test imports rclpy (DESIGN.md §4: Kilted ignores ROS_LOCALHOST_ONLY).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("MPLBACKEND", "Agg")
