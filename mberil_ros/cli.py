"""The `mberil` command: one subcommand per user job (docs/architecture.md).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their subcommand runs, so
``mberil --help`` stays fast and a missing optional dependency only affects its own command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mberil_ros import __version__
from mberil_ros.errors import UserError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mberil_ros.demo", "end-to-end demo: record, convert, train, evaluate and deploy "
             "a learned policy on the embedded MuJoCo NEXTAGE"),
    "sim-demo": ("mberil_ros.sim.demo", "run the scripted demonstrators on each task suite"),
    "sim-dataset": ("mberil_ros.sim.dataset_cli",
                    "demonstration dataset straight from the simulator (no ROS)"),
    "record": ("mberil_ros.record", "run sim + demonstrator + recorder, write a rosbag2"),
    "train": ("mberil_ros.algos.train_cli", "train Offline-MB-ERIL or BC from a dataset"),
    "convert": ("mberil_ros.data.convert_cli", "rosbag2 (MCAP/sqlite3) and ROS 1 bags -> dataset"),
    "bag": ("mberil_ros.data.bag_cli", "rosbag2 repair: `mberil bag reindex BAG` recovers an "
            "interrupted recording"),
    "eval": ("mberil_ros.eval.cli", "run a checkpoint closed loop in the simulator"),
    "compare": ("mberil_ros.compare", "train and evaluate every method x input x dataset x "
                "seed of config/compare.yaml; the results table"),
    "deploy": ("mberil_ros.deploy", "a checkpoint drives the MuJoCo NEXTAGE over ROS topics "
               "(sim_node + policy_node)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mberil",
        description="Offline-MB-ERIL with Mamba for the NEXTAGE: record, convert, train, "
        "evaluate, deploy.",
    )
    parser.add_argument("--version", action="version", version=f"mberil_ros {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module_name)
        # Arguments are added lazily (see main) unless help for this command is asked.
    return parser


def _settings_positional(parser: argparse.ArgumentParser) -> str | None:
    """The positional list that takes KEY=VALUE settings (train, record, convert, deploy,
    demo), if the command has one."""
    return next((a.dest for a in reversed(parser._actions) if not a.option_strings
                 and a.nargs in ("*", "+") and "KEY=VALUE" in str(a.metavar)), None)


def _innermost(parser: argparse.ArgumentParser,
               args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the action actually given (`bag reindex`, not `bag`), so an error shows
    the usage line the user needs."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _innermost(action.choices[chosen], args)
    return parser


def _place_late_settings(sub: argparse.ArgumentParser, args: argparse.Namespace,
                         extra: list[str]) -> None:
    """argparse fills a list positional only before the first option; a user writes `deploy
    CKPT --episodes 2 suite=train` as readily as with the setting first. Late KEY=VALUE items
    join the command's settings; anything else stays an error."""
    extra = [e for e in extra if e != "--"]
    if not extra:
        return
    sub = _innermost(sub, args)
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    settings = _settings_positional(sub)
    if unknown or settings is None:
        sub.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    takes_settings = [a.option_strings[-1] for a in sub._actions
                      if a.option_strings and "KEY=VALUE" in str(a.metavar)]
    if takes_settings:  # `demo --train steps=3 seed=1`: whose seed is it?
        sub.error(f"{' '.join(extra)}: ambiguous after the options (write the command's "
                  f"settings before them; each setting of {takes_settings[0]} takes its own "
                  f"{takes_settings[0]})")
    getattr(args, settings).extend(extra)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Find the subcommand first so only its module is imported.
    command = next((a for a in argv if not a.startswith("-")), None)
    sub_parser = None
    if command in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[command][0])
        sub_action = next(
            a for a in parser._actions if isinstance(a, argparse._SubParsersAction)
        )
        sub_parser = sub_action.choices[command]
        module.add_arguments(sub_parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        if sub_parser is None:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        _place_late_settings(sub_parser, args, extra)
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args) or 0)
    except UserError as exc:
        print(f"mberil {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mberil {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
