"""Input clipping (network.clip_inputs): every network reads x_t and its hand features inside
the range they take on the training split; the bounds travel with the checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from algos_tester import TINY_NET, bc_run, tiny_dataset, warm_start_from

from mberil_ros.algos.data import DataConfig, OfflineData
from mberil_ros.models.config import EncoderConfig
from mberil_ros.models.encoder import SequenceEncoder
from mberil_ros.runtime import PolicyRuntime
from mberil_ros.sim import spaces


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    dataset = tiny_dataset(root, expert=6, suboptimal=0)
    bc_run(root, "r", dataset, 3, "algo.data.val_fraction=0.25", "algo.network.backbone=mamba",
           net=TINY_NET)
    return PolicyRuntime.load(root / "r"), OfflineData(dataset, DataConfig(val_fraction=0.25))


def test_bounds_are_the_training_split_range_of_what_the_encoder_reads(trained):
    rt, data = trained
    enc = rt.policy.encoder
    assert enc.cfg.clip_inputs  # the default
    x_n = torch.from_numpy(rt.codec.obs(data.train_observations()))
    seen = enc._state_inputs(x_n)
    torch.testing.assert_close(enc.input_low, seen.min(0).values)
    torch.testing.assert_close(enc.input_high, seen.max(0).values)
    assert torch.isfinite(enc.input_low).all() and torch.isfinite(enc.input_high).all()
    # features included: hand xyz, goal - hand, obstacle offsets after the kept obs dims
    assert len(enc.input_low) == len(enc.keep_index) + enc.features.out_dim


def test_an_obstacle_taller_than_any_in_training_reads_as_the_tallest_seen(trained):
    rt, data = trained
    lay = spaces.observation_layout("right")
    ep = data.dataset.episode(0)
    obs = ep.observation[:20].copy()
    obs[:, lay.obstacles.start + spaces.OB_PRESENT] = 1.0  # slot 0 holds a box
    names = data.state_names
    top = [names.index("obstacle0.z"), names.index("obstacle0.hz")]
    raw_max = data.train_observations()[:, top].max(0)
    tall, capped = obs.copy(), obs.copy()
    tall[:, top] = raw_max + 0.5  # far outside the training range
    capped[:, top] = raw_max
    enc = rt.policy.encoder
    x_tall = torch.from_numpy(rt.codec.obs(tall))[None]
    x_cap = torch.from_numpy(rt.codec.obs(capped))[None]
    inp_tall = enc._inputs(x_tall, None)
    assert (inp_tall <= enc.input_high + 1e-6).all() and (inp_tall >= enc.input_low - 1e-6).all()
    # the raw dims saturate exactly; the network's output stays inside what it was fitted on
    with torch.no_grad():
        out_tall, out_cap = enc(x_tall), enc(x_cap)
        unclipped = SequenceEncoder(enc.cfg.__class__(**{**enc.cfg.__dict__,
                                                          "clip_inputs": False}))
        state = {k: v for k, v in enc.state_dict().items() if not k.startswith("input_")}
        unclipped.load_state_dict(state)
        out_free = unclipped(x_tall)
    assert torch.isfinite(out_tall).all()
    assert not torch.allclose(out_free, out_tall, atol=1e-4)  # the clamp did something
    assert (out_tall - out_cap).abs().max() < (out_free - out_cap).abs().max()


def test_streaming_steps_equal_the_full_forward_with_clipped_inputs(trained):
    rt, data = trained
    enc = rt.policy.encoder
    ep = data.dataset.episode(1)
    x = torch.from_numpy(rt.codec.obs(ep.observation[:12]))[None] * 3.0  # mostly out of range
    with torch.no_grad():
        full = enc(x)
        state = enc.init_state(1)
        steps = torch.stack([enc.step(x[:, t], None, state) for t in range(x.shape[1])], 1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-4)


def test_an_encoder_without_clipping_has_no_bounds_and_passes_inputs_through():
    cfg = EncoderConfig(obs_dim=5, act_dim=6, backbone="mlp", d_model=8, mlp_hidden=8)
    enc = SequenceEncoder(cfg)
    assert "input_low" not in enc.state_dict()  # checkpoints of older versions still load
    x = torch.randn(3, 5) * 100
    torch.testing.assert_close(enc._inputs(x, None), x)


def test_a_warm_start_without_clip_bounds_is_refused_with_the_setting_to_change(tmp_path):
    from mberil_ros.errors import UserError

    dataset = tiny_dataset(tmp_path, expert=6, suboptimal=0)
    old = bc_run(tmp_path, "old", dataset, 2, "algo.data.val_fraction=0.25",
                 "algo.network.clip_inputs=false", net=TINY_NET)
    assert not PolicyRuntime.load(old).policy.encoder.cfg.clip_inputs  # runs as it was trained
    with pytest.raises(UserError, match="without input clipping: set "
                                        "algo.network.clip_inputs=false"):
        warm_start_from(old, dataset)


def test_clip_inputs_must_be_a_boolean(tmp_path):
    dataset = tiny_dataset(tmp_path, expert=4, suboptimal=0)
    with pytest.raises(Exception, match="clip_inputs must be true or false"):
        bc_run(tmp_path, "bad", dataset, 1, "algo.network.clip_inputs=maybe", net=TINY_NET)
    np.testing.assert_equal(list((tmp_path).glob("bad*")), [])
