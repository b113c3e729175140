"""Every backbone x discriminator option of Offline-MB-ERIL, and BC, through algos_tester."""

from __future__ import annotations

import pytest
from algos_tester import TINY_NET, check_algorithm, tiny_data

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.offline_mberil import OfflineMBERIL, OfflineMBERILConfig


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("algos"))


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
@pytest.mark.parametrize("discriminator", ["structured", "unstructured"])
def test_offline_mberil(data, backbone, discriminator):
    cfg = OfflineMBERILConfig.from_dict({
        "network": {**TINY_NET, "backbone": backbone}, "discriminator": discriminator,
        "bc_warmstart_steps": 2, "model_warmstart_steps": 1, "batch_size": 4,
        "rollout_batch": 4, "ensemble_size": 2, "horizon": 3, "fifo_size": 16})
    # steps 0-1 warm start, later steps run the adversarial loop (resume happens inside it)
    check_algorithm(lambda seed: OfflineMBERIL(cfg, data, "cpu", seed))


@pytest.mark.parametrize("baseline", ["uniform", "mle"])
def test_offline_mberil_baselines(data, baseline):
    cfg = OfflineMBERILConfig.from_dict({
        "network": {**TINY_NET, "backbone": "mlp"}, "baseline": baseline,
        "bc_warmstart_steps": 1, "model_warmstart_steps": 1, "batch_size": 4,
        "rollout_batch": 4, "ensemble_size": 2, "horizon": 2, "fifo_size": 16})
    check_algorithm(lambda seed: OfflineMBERIL(cfg, data, "cpu", seed), steps=3, more=2)


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_bc(data, backbone):
    cfg = BCConfig.from_dict({"network": {**TINY_NET, "backbone": backbone}, "batch_size": 4})
    check_algorithm(lambda seed: BC(cfg, data, "cpu", seed))
