"""Every `mberil ...` command line in README.md and in the --help examples parses
(arguments and, for `train`, every config key and value), so neither can drift from the
command line; and what the docs point to exists in this repository."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mberil_ros.algos.runner import default_run_name
from mberil_ros.algos.train_config import load_train_config
from mberil_ros.cli import SUBCOMMANDS, build_parser
from mberil_ros.paths import config_file

ROOT = Path(__file__).resolve().parents[1]
# the team's brief lives beside the repository; users never have it (spelled in pieces so
# this file does not match itself)
OUTSIDE = ("shared" + "/", "DESIGN" + ".md", "ALGORITHM" + ".md")


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith((".venv/bin/mberil ", "mberil ")):
                lines.append(line)
    return lines


COMMANDS = readme_commands()


def test_the_readme_shows_commands():
    assert len(COMMANDS) >= 6
    assert {shlex.split(c)[1] for c in COMMANDS} >= {"record", "convert", "train", "eval",
                                                      "sim-dataset"}


def subcommand_parser(name: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(the mberil parser, its ``name`` subparser) with the subcommand's arguments added."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    importlib.import_module(SUBCOMMANDS[name][0]).add_arguments(sub.choices[name])
    return parser, sub.choices[name]


def help_examples() -> list[str]:
    """Every `mberil ...` line of every subcommand's --help epilog."""
    lines = []
    for name in SUBCOMMANDS:
        _, sub = subcommand_parser(name)
        for line in (sub.epilog or "").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("mberil "):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", COMMANDS + help_examples())
def test_readme_and_help_example_parses(line):
    argv = shlex.split(line)[1:]
    parser, _ = subcommand_parser(argv[0])
    args = parser.parse_args(argv)
    if argv[0] == "train" and args.fork is not None:
        # the keys and values of a fork's overrides, on a config that has a dataset (the
        # source run's does)
        load_train_config(config_file("train.yaml"), ["dataset=source", *args.overrides])
    elif argv[0] == "train" and args.resume is None:
        config = Path(args.config) if args.config else config_file("train.yaml")
        cfg = load_train_config(ROOT / config if not config.is_absolute() else config,
                                args.overrides)
        backbone = cfg.algo.network.backbone
        assert backbone in default_run_name(cfg), "run folders are named after the backbone"


def test_docs_references_point_into_the_repository():
    """Code, configs and docs cite docs/*.md pages that exist, and nothing outside the repo."""
    cited = set()
    # what git tracks or would add: virtual environments, runs and .ci/ are not the product
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, text=True, check=True)
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if (path.suffix not in (".py", ".yaml", ".md", ".xacro", ".sh")
                or name.startswith(".ci/") or not path.is_file()):
            continue
        text = path.read_text(errors="replace")
        for outside in OUTSIDE:
            assert outside not in text, f"{path} points outside the repository: {outside}"
        cited |= set(re.findall(r"docs/([a-z_]+\.md)", text))
    missing = sorted(c for c in cited if not (ROOT / "docs" / c).is_file())
    assert not missing, f"cited but not in docs/: {missing}"
