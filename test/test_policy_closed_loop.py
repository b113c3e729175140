"""A trained Mamba policy driven closed loop through the runtime does not chatter.

Mamba policies used to fall into a period-2 chatter (commands alternating every tick, wrist
joints on the velocity clamp). The cause was the previous-action token: the policy read the
absolute previous command, normalized over the workspace, and predicted the next absolute
target from it, so in closed loop a small error in u_{t-1} came back amplified with the
opposite sign. The token is now the last command minus the measured position and the action
a small relative step (algos/codec.py); this test keeps it that way.
"""

from __future__ import annotations

import pytest
from algos_tester import bc_run, tiny_dataset

from mberil_ros.eval.closed_loop import VALIDATION_SEED_BASE, evaluate

# a small but real Mamba: two blocks, trained long enough to move the arm purposefully
NET = {"d_model": 32, "n_layers": 2, "context": 16, "d_state": 8, "head_hidden": 64}


@pytest.fixture(scope="module")
def mamba_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("chatter")
    ds = tiny_dataset(root, expert=10, suboptimal=0)
    return bc_run(root, "r", ds, 150, "algo.batch_size=4", "algo.lr=0.001",
                  "algo.data.val_fraction=0.2", "algo.network.backbone=mamba", net=NET)


def test_trained_mamba_policy_does_not_chatter(mamba_checkpoint):
    results = evaluate(str(mamba_checkpoint), "train",
                       [VALIDATION_SEED_BASE + i for i in range(3)], workers=1)
    # chatter reverses every tick: ~25 reversals per joint and second at 50 Hz
    for r in results:
        assert r.ticks > 20
        assert r.sign_changes < 3.0, f"seed {r.seed}: {r.sign_changes:.1f} reversals/s"
