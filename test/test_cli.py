"""`mberil`'s own parsing: KEY=VALUE settings may come before or after the options, other
late words are refused, and an unknown option names the subcommand's usage."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from mberil_ros.cli import SUBCOMMANDS, main


@pytest.fixture
def parsed(monkeypatch):
    """main(argv) for a subcommand, with its run() replaced by one that keeps the args."""
    seen = {}

    def keep(command: str):
        module = importlib.import_module(SUBCOMMANDS[command][0])
        monkeypatch.setattr(module, "run", lambda args: seen.setdefault("args", args) and 0)

    def call(argv: list[str]):
        keep(argv[0])
        assert main(argv) == 0
        return seen.pop("args")

    return call


def test_settings_after_the_options(parsed):
    args = parsed(["deploy", "ckpt", "--episodes", "2", "suite=train", "seed=3"])
    assert (args.checkpoint, args.episodes, args.settings) == (Path("ckpt"), 2,
                                                               ["suite=train", "seed=3"])
    # on both sides, in the order given
    args = parsed(["record", "seed=1", "--log-dir", "logs", "seed=2"])
    assert args.settings == ["seed=1", "seed=2"]
    args = parsed(["convert", "a.mcap", "-o", "ds", "grid.fps=25"])
    assert args.bags == ["a.mcap", "grid.fps=25"] and args.output == "ds"
    args = parsed(["train", "--config", "x.yaml", "steps=3"])
    assert args.overrides == ["steps=3"]


def test_an_unknown_option_shows_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["deploy", "ckpt", "--episodes", "2", "--bogus", "suite=train"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "usage: mberil deploy" in err and "unrecognized arguments: --bogus\n" in err
    with pytest.raises(SystemExit):  # a command without settings: as before, and the usage
        main(["bag", "reindex", "b", "extra"])  # line is the action's, not `mberil bag`'s
    err = capsys.readouterr().err
    assert "usage: mberil bag reindex" in err and "unrecognized arguments: extra" in err


@pytest.mark.parametrize("argv,needle", [
    # a late word that is not a setting is not taken for a checkpoint or a bag
    (["eval", "runs/a", "--suite", "train", "heldout_init"], "unrecognized arguments: "
                                                             "heldout_init"),
    (["convert", "a.mcap", "-o", "ds", "b.mcap"], "unrecognized arguments: b.mcap"),
    # demo's --train also takes KEY=VALUE: a late setting could be either
    (["demo", "seed=1", "--train", "steps=3", "seed=2"], "seed=2: ambiguous after the options"),
])
def test_late_words_that_are_not_the_commands_settings_are_refused(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


def test_a_double_dash_before_late_settings_is_accepted(parsed):
    args = parsed(["deploy", "ckpt", "--episodes", "2", "--", "suite=train"])
    assert args.settings == ["suite=train"]
    assert parsed(["deploy", "ckpt", "--episodes", "2", "--"]).settings == []


@pytest.mark.parametrize("argv,needle", [
    (["--suite", "nosuch"], "unknown suite 'nosuch'"),
    (["--episodes", "0"], "--episodes must be >= 1"),
    (["suite=heldout_init", "--real-time-factor", "0"], "--real-time-factor must be > 0"),
])
def test_deploy_refuses_bad_input_before_any_node_or_folder(tmp_path, monkeypatch, capsys,
                                                             argv, needle):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    policy = Path(__file__).parent / "data" / "policy_reach_mlp"
    assert main(["deploy", str(policy), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
    assert not list(tmp_path.iterdir())  # no empty log folder left behind
    assert main(["deploy", str(tmp_path / "missing")]) == 2
    assert "no complete checkpoint" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
