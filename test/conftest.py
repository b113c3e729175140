"""Shared test set-up: isolate DDS discovery so parallel runs never see each other's nodes,
and keep temporary files out of the machine's /tmp."""

from __future__ import annotations

import os
import random
import tempfile

import pytest

# Set before any test imports rclpy (docs/ros.md: Kilted ignores ROS_LOCALHOST_ONLY).
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 101)))
os.environ.setdefault("MPLBACKEND", "Agg")

_domains = iter(range(random.SystemRandom().randint(1, 60), 102))


@pytest.fixture(autouse=True)
def fresh_ros_domain(monkeypatch):
    """A new ROS_DOMAIN_ID per test: endpoints of a test's nodes that exited (DDS forgets
    them only when their lease expires) never meet the next test's nodes."""
    try:
        monkeypatch.setenv("ROS_DOMAIN_ID", str(next(_domains)))
    except StopIteration:  # more ROS tests than domains left: reuse the session's
        pass


@pytest.fixture(scope="session", autouse=True)
def scratch_tmpdir(tmp_path_factory):
    """Temporary files of the code under test and of its child processes (launch_ros's
    launch_params_* files, torchrun's torchelastic_* folders: neither deletes them) go to
    pytest's own temporary folder, which pytest rotates, instead of piling up in /tmp."""
    path = str(tmp_path_factory.mktemp("tmpdir"))
    with pytest.MonkeyPatch.context() as mp:  # session-wide, so not the monkeypatch fixture
        mp.setenv("TMPDIR", path)
        mp.setattr(tempfile, "tempdir", path)
        yield path
