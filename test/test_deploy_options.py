"""`mberil deploy`'s options, checked without starting any node."""

from __future__ import annotations

from pathlib import Path

import pytest

from mberil_ros.deploy import DeployOptions, sim_parameters, validate
from mberil_ros.errors import UserError
from mberil_ros.eval.closed_loop import EVAL_SEED_BASE

POLICY = Path(__file__).parent / "data" / "policy_reach_mlp"


def test_deploy_seed_counts_from_the_first_evaluation_layout_as_eval_does():
    # `mberil eval --seed 7` runs layout seed EVAL_SEED_BASE + 7 + i as episode i
    params = sim_parameters(DeployOptions(seed=7, episodes=3, suite="heldout_init"), "right")
    assert params["seed"] == EVAL_SEED_BASE + 7
    assert params["suite"] == "heldout_init" and params["episodes"] == 3
    assert sim_parameters(DeployOptions(), "right")["seed"] == EVAL_SEED_BASE


@pytest.mark.parametrize("options,needle", [
    (DeployOptions(seed=-1), "--seed must be >= 0"),
    (DeployOptions(episodes=0), "--episodes must be >= 1"),
    (DeployOptions(suite="nowhere"), "--suite: unknown suite 'nowhere'"),
])
def test_bad_deploy_options_are_refused_before_any_node_starts(options, needle):
    with pytest.raises(UserError, match=needle):
        validate(POLICY, options)


def test_a_valid_deploy_returns_the_checkpoints_arm():
    assert validate(POLICY, DeployOptions()) == "right"  # its joints are RARM_JOINT0..5
