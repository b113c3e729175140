"""Every backbone x discriminator option of Offline-MB-ERIL, and BC, through algos_tester."""

from __future__ import annotations

import pytest
import torch
from algos_tester import TINY_NET, check_algorithm, tiny_data, tiny_mberil_config

from mberil_ros.algos.bc import BC, BCConfig
from mberil_ros.algos.offline_mberil import OfflineMBERIL


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("algos"))


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
@pytest.mark.parametrize("discriminator", ["structured", "unstructured"])
def test_offline_mberil(data, backbone, discriminator):
    cfg = tiny_mberil_config(backbone, discriminator=discriminator, bc_warmstart_steps=2,
                             horizon=3)
    # steps 0-1 warm start, later steps run the adversarial loop (resume happens inside it)
    check_algorithm(lambda seed: OfflineMBERIL(cfg, data, "cpu", seed))


@pytest.mark.parametrize("baseline", ["uniform", "mle"])
def test_offline_mberil_baselines(data, baseline):
    cfg = tiny_mberil_config(baseline=baseline)
    check_algorithm(lambda seed: OfflineMBERIL(cfg, data, "cpu", seed), steps=3, more=2)


@pytest.mark.parametrize("backbone", ["mamba", "mlp"])
def test_bc(data, backbone):
    cfg = BCConfig.from_dict({"network": {**TINY_NET, "backbone": backbone}, "batch_size": 4})
    check_algorithm(lambda seed: BC(cfg, data, "cpu", seed))


def test_baseline_log_std_floor_widens_b_in_the_kl_term(data):
    cfg = tiny_mberil_config(baseline="mle", baseline_log_std_min=-1.0, bc_warmstart_steps=0,
                             model_warmstart_steps=0)
    algo = OfflineMBERIL(cfg, data, "cpu", 0)
    b = data.sample("expert", 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, ls = algo.policy_base(b.obs, b.prev_act)
        u = torch.tanh(mu + 0.3)
        want = algo.policy_base.log_prob_from_params(mu, ls.clamp(min=-1.0), u)
        assert (ls < -1.0).any()  # the floor is exercised
        torch.testing.assert_close(algo._log_b(b.obs, b.prev_act, u), want)
        algo.cfg.baseline_log_std_min = None
        torch.testing.assert_close(algo._log_b(b.obs, b.prev_act, u),
                                   algo.policy_base.log_prob_from_params(mu, ls, u))
