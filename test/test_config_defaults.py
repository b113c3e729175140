"""The shipped YAML files name only known keys and repeat the dataclass defaults (the one
source of every default), except the documented differences of the BC recipe."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from mberil_ros.algos.train_config import RunConfig, algorithm_classes, load_train_config
from mberil_ros.data.config import load_config
from mberil_ros.paths import config_file

# train_bc.yaml is BC's recipe: what it sets on purpose, away from the run defaults
BC_RECIPE = {"algorithm", "steps", "eval_every", "checkpoint_every", "algo.lr_decay_steps"}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@pytest.mark.parametrize("name, allowed", [("train.yaml", set()),
                                           ("train_bc.yaml", BC_RECIPE)])
def test_training_yaml_matches_the_dataclass_defaults(name, allowed):
    path = config_file(name)
    shipped = yaml.safe_load(path.read_text())
    load_train_config(path, ["dataset=somewhere"])  # unknown keys or bad values fail here
    algo_cls, _ = algorithm_classes(shipped.get("algorithm", RunConfig.algorithm))
    defaults = {**_flat(dataclasses.asdict(RunConfig())),
                **_flat({"algo": dataclasses.asdict(algo_cls())})}
    values = _flat(shipped)
    assert set(values) <= set(defaults), f"{name}: keys without a default"
    differ = {k: (v, defaults[k]) for k, v in values.items() if v != defaults[k]}
    assert set(differ) == allowed, f"{name}: yaml vs dataclass default: {differ}"


def test_dataset_yaml_matches_the_dataclass_defaults():
    assert load_config(config_file("dataset.yaml")).to_dict() == load_config(None).to_dict()


def test_every_node_parameter_and_record_option_is_described():
    """`ros2 param describe`, `mberil record --help` and the launch arguments print these."""
    pytest.importorskip("rclpy")
    from mberil_ros.nodes.demonstrator_node import DemonstratorNodeParameters
    from mberil_ros.nodes.recorder_node import RecorderNodeParameters
    from mberil_ros.nodes.sim_node import SimNodeParameters
    from mberil_ros.nodes.trainer_node import TrainerNodeParameters
    from mberil_ros.record import RecordOptions
    from mberil_ros.settings import descriptions

    for cls in (SimNodeParameters, DemonstratorNodeParameters, RecorderNodeParameters,
                TrainerNodeParameters, RecordOptions):
        missing = [name for name, text in descriptions(cls).items() if len(text) < 8]
        assert not missing, f"{cls.__name__}: no description for {missing}"
