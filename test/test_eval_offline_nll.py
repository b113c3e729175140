"""Offline NLL of a checkpoint on a test dataset (`mberil eval --nll DATASET`): the
checkpoint's own normalization, every episode, NLL_m for Offline-MB-ERIL, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from algos_tester import TINY_NET, tiny_dataset
from safetensors.numpy import load_file, save_file

from mberil_ros.algos.codec import PolicyCodec
from mberil_ros.algos.runner import TrainingRun
from mberil_ros.algos.train_config import load_train_config
from mberil_ros.cli import main
from mberil_ros.errors import UserError
from mberil_ros.eval.offline_nll import checkpoint_nll
from mberil_ros.sim.rollout_dataset import generate_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("nll")
    ds = tiny_dataset(root, expert=6, suboptimal=2)
    test = generate_dataset(root / "test", 3, 0, seed=77, suite="heldout_obstacles")
    cfg = load_train_config(None, [
        "algorithm=offline_mberil", f"dataset={ds}", f"output_dir={root}", "name=r",
        "steps=40", "eval_every=40", "checkpoint_every=40", "progress=false",
        "algo.batch_size=4", "algo.rollout_batch=2", "algo.ensemble_size=2",
        "algo.bc_warmstart_steps=30", "algo.model_warmstart_steps=30",
        "algo.network.backbone=mlp", *[f"algo.network.{k}={v}" for k, v in TINY_NET.items()]])
    TrainingRun(cfg, root / "r").run()
    return root, root / "r" / "checkpoints" / "last", ds, test


def test_nll_of_a_checkpoint_on_a_test_set_uses_its_own_normalization(setup, monkeypatch):
    root, checkpoint, ds, test = setup

    def refit(*a, **k):
        raise AssertionError("the test set must not be re-normalized")

    monkeypatch.setattr(PolicyCodec, "fit", refit)
    nll = checkpoint_nll(checkpoint, test)
    assert {"nll_pi", "nll_m", "nll_m_expert"} <= set(nll)
    assert "nll_m_dim/RARM_JOINT0.pos" in nll and "nll_m_dim/RARM_JOINT5.vel" in nll
    assert all(np.isfinite(v) for v in nll.values())


def test_past_the_warm_start_it_also_reports_the_actor_signal(setup):
    root, checkpoint, ds, test = setup
    adversarial = checkpoint_nll(checkpoint, test)  # step 40: 10 adversarial iterations
    for key in ("actor/q_align", "actor/q_align_top", "actor/gap_top", "actor/q_shift"):
        assert np.isfinite(adversarial[key]), key
    warm = checkpoint_nll(checkpoint.parent / "warmstart", test)  # no discriminator step yet
    assert not any(k.startswith("actor/") for k in warm)


def test_a_trained_checkpoint_fits_better_than_its_scrambled_copy(setup, tmp_path):
    root, checkpoint, ds, test = setup
    trained = checkpoint_nll(checkpoint, ds)
    broken = tmp_path / "run" / "checkpoints" / "00000040"
    import shutil

    shutil.copytree(checkpoint.resolve(), broken)
    shutil.copy(checkpoint.resolve().parent.parent / "config.yaml", tmp_path / "run")
    weights = broken / "model.safetensors"
    rng = np.random.default_rng(0)
    save_file({k: rng.normal(0, 0.5, v.shape).astype(v.dtype) if v.dtype.kind == "f" else v
               for k, v in load_file(weights).items()}, weights)
    scrambled = checkpoint_nll(broken, ds)
    assert trained["nll_pi"] < scrambled["nll_pi"]
    assert trained["nll_m"] < scrambled["nll_m"]


def test_mberil_eval_reports_offline_nll(setup, tmp_path, capsys):
    root, checkpoint, ds, test = setup
    out = tmp_path / "e.json"
    assert main(["eval", str(checkpoint), "--suite", "train", "--episodes", "1", "--workers",
                 "1", "--nll", str(test), "--json", str(out)]) == 0
    assert f"offline NLL on {test}: nll_pi" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert list(report["offline_nll"]) == [str(checkpoint.resolve())]
    assert report["offline_nll"][str(checkpoint.resolve())][str(test)] == pytest.approx(
        checkpoint_nll(checkpoint, test))


def test_several_checkpoints_each_get_their_nll_and_baselines_none(setup, tmp_path, capsys):
    root, checkpoint, ds, test = setup
    warm, out = checkpoint.parent / "warmstart", tmp_path / "e.json"
    assert main(["eval", str(warm), str(checkpoint), "expert", "--suite", "train",
                 "--episodes", "1", "--workers", "1", "--nll", str(test), "--nll", str(ds),
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in (warm, checkpoint):
        for dataset in (test, ds):
            assert f"{name}: offline NLL on {dataset}: nll_pi" in printed
    nll = json.loads(out.read_text())["offline_nll"]
    assert list(nll) == [str(warm.resolve()), str(checkpoint.resolve())]  # not the expert
    for spec in (warm, checkpoint):
        assert nll[str(spec.resolve())][str(test)] == pytest.approx(checkpoint_nll(spec, test))
    # two different checkpoints, two different fits
    assert nll[str(warm.resolve())][str(test)]["nll_m"] != nll[str(checkpoint.resolve())][
        str(test)]["nll_m"]


def test_offline_nll_errors_are_one_line(setup, tmp_path, capsys):
    root, checkpoint, ds, test = setup
    assert main(["eval", "expert", "--nll", str(test)]) == 2
    assert main(["eval", "expert", "hold", "--nll", str(test)]) == 2
    assert main(["eval", str(checkpoint), "--nll", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "missing" in err[2]
    assert all("--nll needs a checkpoint" in line for line in err[:2])
    both = generate_dataset(tmp_path / "both", 2, 0, seed=3, arm="both")
    with pytest.raises(UserError, match="names differ from those"):
        checkpoint_nll(checkpoint, both)
