"""`mberil eval CHECKPOINT --suite S --episodes N --seed K [--json OUT] [--plot DIR]`, or
`mberil eval CHECKPOINT --layouts FILE.yaml`: every layout a user wrote, once.

Runs the checkpoint closed loop in the in-process simulator through the policy runtime (the
ROS policy node's runtime), episodes spread over worker processes, and prints success,
collisions, final distance, time to goal and smoothness per suite. ``--baselines`` also runs
the scripted expert (the evaluator's self-test) and a hold-still policy on the same seeds.
CHECKPOINT may be a checkpoint folder, a run folder (its checkpoints/last), ``expert`` or
``hold``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

from mberil_ros.errors import UserError
from mberil_ros.eval.closed_loop import (
    BASELINES,
    EVAL_SEED_BASE,
    Evaluator,
    Interruption,
    evaluation_seeds,
    summarize,
)
from mberil_ros.eval.table import text_table
from mberil_ros.sim.spaces import ARMS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  mberil eval runs/bc-mlp-20261129-120000 --suite train --episodes 100\n"
        "  mberil eval runs/RUN/checkpoints/best --suite all --baselines --json eval.json\n"
        "  mberil eval expert --suite heldout_obstacles --episodes 50\n"
        "  mberil eval runs/RUN --layouts my_scenes.yaml --baselines\n"
        "  mberil eval runs/RUN --suite train --episodes 40 --seed 1000000 --hold  "
        "# holds the target? (training's validation layouts, seeds 2,000,000+)\n"
        "  mberil eval runs/RUN/checkpoints/warmstart runs/RUN/checkpoints/best --suite all  "
        "# paired\n"
        "  mberil eval runs/RUN/checkpoints/warmstart runs/RUN/checkpoints/best "
        "--nll datasets/test_heldout_init --episodes 1  # offline fit of both\n"
        "  mberil eval runs/RUN --suite train --interrupt 150:50 --interrupt-as reset  "
        "# reaches from a fresh history in mid-reach?")
    parser.add_argument("checkpoints", nargs="+", metavar="checkpoint",
                        help="checkpoint folder, run folder, 'expert' or 'hold'; with two or "
                        "more, each is also compared with the first on the same layouts, "
                        "episode by episode (gained / lost, exact sign test)")
    parser.add_argument("--suite", action="append", metavar="NAME",
                        help="task suite (repeatable; default train; 'all': train, "
                             "heldout_init, heldout_obstacles; shift_fit / shift_check / "
                             "shift_beside: the obstacle-shift checks inside train's region; "
                             "shift_init_fit / shift_init_check: the start-pose one)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per suite (100)")
    parser.add_argument("--seed", type=int, default=0,
                        help=f"episode i uses layout seed {EVAL_SEED_BASE} + SEED + i (0)")
    parser.add_argument("--arm", choices=ARMS,
                        help="the arm(s) to run (default: the first checkpoint's; right for "
                        "the baselines alone)")
    parser.add_argument("--workers", type=int, default=0,
                        help="worker processes (0: one per CPU core)")
    parser.add_argument("--layouts", metavar="FILE.yaml",
                        help="run every layout of this file (docs/task.md) for --arm once, "
                        "instead of sampled suites")
    parser.add_argument("--nll", action="append", default=[], metavar="DATASET",
                        help="also each checkpoint's offline NLL_pi (and nll_pi_trim, without "
                        "the worst 1 %% of steps) / NLL_m on every episode "
                        "of DATASET (e.g. expert demonstrations of a held-out suite; "
                        "repeatable); past an Offline-MB-ERIL warm start also the actor "
                        "signal (actor/*, docs/algorithm.md)")
    parser.add_argument("--baselines", action="store_true",
                        help="also run the scripted expert and a hold-still policy")
    parser.add_argument("--hold", action="store_true",
                        help="after a success keep the controller running until the time "
                        "limit, as on a robot; adds held (still within the tolerance, "
                        "nothing touched) and the median settled distance")
    parser.add_argument("--expert-query", action="store_true",
                        help="also ask the scripted expert at every tick what it would "
                        "command from the policy's own state; adds where that lies under the "
                        "policy (median |z| in its sigmas: 0.67 when they agree as well as "
                        "the policy says), over successes / failures, and the share beyond "
                        "its 99 %% band in their first 0.5 s (0.01 then)")
    parser.add_argument("--interrupt", metavar="TICK:TICKS",
                        help="also run every controller with a hold in mid-episode, as "
                        "policy_node makes one: from tick TICK on (50 per second) the arm "
                        "holds its last command for TICKS ticks, then the policy goes on; "
                        "paired with the same controller uninterrupted")
    parser.add_argument("--interrupt-as", choices=Interruption.KINDS,
                        help="stale (default): the policy's recurrent state resumes where it "
                        "was, as after stale or non-finite input; estop: what policy_node "
                        "does at ~/clear_estop (resumes, as the arm was not moved; adds the "
                        "share resumed); reset: a fresh history from the state reached, as "
                        "after ~/reset_episode or an e-stop in which the arm was moved")
    parser.add_argument("--json", metavar="OUT.json", help="write the summary and every episode")
    parser.add_argument("--plot", metavar="DIR", help="draw the first episodes' hand paths")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, got {args.seed}")
    if args.interrupt_as and not args.interrupt:
        raise UserError("--interrupt-as needs --interrupt TICK:TICKS")
    interruption = (_interruption(args.interrupt, args.interrupt_as or "stale")
                    if args.interrupt else None)
    if args.arm is None:
        from mberil_ros.algos.checkpoint import arm

        policy = next((c for c in args.checkpoints if c not in BASELINES), None)
        args.arm = arm(Path(policy)) if policy else "right"
    layouts = args.layouts
    if layouts:
        if args.suite:
            raise UserError("--layouts and --suite exclude each other")
        from mberil_ros.sim.layouts import load_layouts

        episodes = load_layouts(layouts)
        suites = ["layouts"]
        seeds = [i for i, e in enumerate(episodes) if e.arm == args.arm]
        if not seeds:
            raise UserError(f"{layouts}: no layout for arm {args.arm!r} (set --arm or the "
                            f"layouts' arm:)")
    else:
        from mberil_ros.sim.suites import suite_names

        suites = suite_names(args.suite, ["train"])
        seeds = evaluation_seeds(args.seed, args.episodes)
    several = len(args.checkpoints) > 1
    labels: dict[str, str] = {}  # spec -> name in the tables
    for arg in args.checkpoints:
        spec = arg
        if arg not in BASELINES:
            from mberil_ros.algos.checkpoint import resolve
            from mberil_ros.eval.closed_loop import RuntimeController
            from mberil_ros.sim.task import ReachingTask

            spec = str(resolve(Path(arg)))  # one clear error before any worker
            rt = RuntimeController.load(spec, ReachingTask("train", args.arm)).runtime
            print((f"{arg}: " if several else "") + rt.summary)
        labels[spec] = arg if several or arg in BASELINES else "policy"
    if len(labels) < len(args.checkpoints):  # e.g. a run folder and its best checkpoint
        raise UserError("a checkpoint is given twice: " + ", ".join(args.checkpoints))
    specs = list(labels) + [b for b in BASELINES if args.baselines and b not in labels]
    labels.update({b: b for b in BASELINES if b not in labels})
    keep = 3 if args.plot else 0
    report: dict = {"seeds": [seeds[0], seeds[-1]], "arm": args.arm, "results": []}
    if args.nll:  # first: a bad dataset fails before any episode runs
        given = specs[:len(args.checkpoints)]
        if all(s in BASELINES for s in given):
            raise UserError(f"--nll needs a checkpoint, not {' / '.join(given)}")
        report["offline_nll"] = _offline_nll([s for s in given if s not in BASELINES],
                                             args.nll, labels if several else {})
    if layouts:
        report["layouts"] = str(layouts)
    if interruption:
        report["interruption"] = asdict(interruption)
    variants = [None] + ([interruption] if interruption else [])
    rows = []
    episodes_of: dict[tuple[str, str], list[dict]] = {}  # (name, suite) -> episodes
    with tqdm(total=len(specs) * len(suites) * len(seeds) * len(variants), desc="episodes",
              unit="ep", ncols=90) as bar, Evaluator(args.workers or os.cpu_count()) as evaluator:
        for spec in specs:
            for suite in suites:
                for variant in variants:
                    name = _name(labels[spec], variant)
                    results = evaluator.run(spec, suite, seeds, arm=args.arm,
                                            keep_paths=keep, progress=bar.update,
                                            layouts=layouts, hold=args.hold,
                                            expert_query=args.expert_query,
                                            interruption=variant)
                    summary = summarize(results)
                    rows.append((name, suite, summary))
                    episodes_of[name, suite] = [r.__dict__ for r in results]
                    report["results"].append({"controller": spec, "suite": suite,
                                              "interrupted": variant is not None,
                                              "summary": summary,
                                              "episodes": episodes_of[name, suite]})
                    if args.plot:
                        _plot(Path(args.plot), name.replace(" + ", "-").replace(" ", "_"),
                              suite, args.arm, results[:keep], episodes if layouts else None)
    print(format_table(rows))
    given = specs[:len(args.checkpoints)]
    pairs = [(given[0], spec, False) for spec in given[1:]]
    if interruption:
        pairs += [(spec, spec, True) for spec in specs]
    if pairs:
        report["paired"] = _paired(pairs, suites, episodes_of, labels, interruption)
    if args.json:
        from mberil_ros.paths import write_text_atomic

        print(f"wrote {write_text_atomic(Path(args.json), json.dumps(report, indent=1))}")
    return 0


NLL_SHOWN = ("nll_pi", "nll_pi_trim", "pi_expert_z", "pi_expert_tail", "nll_m", "actor/q_align",
             "actor/q_align_top", "actor/gap_top", "actor/q_shift_top")


def _offline_nll(policies: list[str], datasets: list[str],
                 labels: dict[str, str]) -> dict[str, dict[str, dict]]:
    """{checkpoint: {dataset: metrics}}, each also printed on one line (after its label,
    if ``labels`` names it)."""
    from mberil_ros.eval.offline_nll import checkpoint_nll

    out: dict[str, dict[str, dict]] = {}
    for spec in policies:
        out[spec] = {}
        for dataset in datasets:
            nll = out[spec][dataset] = checkpoint_nll(spec, dataset)
            shown = ", ".join(f"{k} {nll[k]:{'.3f' if k.startswith('nll') else '.2g'}}"
                              for k in NLL_SHOWN if k in nll)
            who = f"{labels[spec]}: " if spec in labels else ""
            print(f"{who}offline NLL on {dataset}: {shown}")
    return out


def format_table(rows: list[tuple[str, str, dict]]) -> str:
    header = ["controller", "suite", "episodes", "success", "collision", "final_dist_m",
              "time_to_goal_s", "sign_changes/s"]
    hold = any("held" in s for _, _, s in rows)
    if hold:
        header += ["held", "settled_dist_m"]
    query = ("expert_z_success", "expert_z_failure", "expert_tail_start_success",
             "expert_tail_start_failure")
    queried = any("expert_z" in s for _, _, s in rows)
    if queried:
        header += ["expert_z ok/fail", "tail in first 0.5 s ok/fail"]
    body = []
    for name, suite, s in rows:
        t = "-" if s["time_to_goal"] is None else f"{s['time_to_goal']:.2f}"
        z = ["-" if s.get(k) is None else f"{s[k]:.2f}" for k in query]
        body.append([name, suite, str(s["episodes"]), f"{s['success']:.2f}",
                     f"{s['collision']:.2f}", f"{s['final_distance']:.3f}", t,
                     f"{s['sign_changes']:.2f}"]
                    + ([f"{s['held']:.2f}", f"{s['settled_distance']:.3f}"] if hold else [])
                    + ([f"{z[0]} / {z[1]}", f"{z[2]} / {z[3]}"] if queried else []))
    return text_table(header, body)


def _paired(pairs: list[tuple[str, str, bool]], suites: list[str],
            episodes_of: dict[tuple[str, str], list[dict]], labels: dict[str, str],
            interruption: Interruption | None) -> list[dict]:
    """(base, controller, interrupted): the controller (interrupted or not) against the base
    uninterrupted, suite by suite: printed, and returned for the JSON report."""
    from mberil_ros.eval.paired import paired

    out, body = [], []
    for base, spec, interrupted in pairs:
        name = _name(labels[spec], interruption if interrupted else None)
        for suite in suites:
            p = paired(episodes_of[labels[base], suite], episodes_of[name, suite])
            out.append({"base": base, "controller": spec, "interrupted": interrupted,
                        "suite": suite, **p})
            body.append([name, labels[base], suite, str(p["episodes"]),
                         f"{p['success_base']:.2f}", f"{p['success']:.2f}", str(p["gained"]),
                         str(p["lost"]), f"{p['p']:.2f}"])
    print("\npaired on the same layouts (gained / lost against the base; p: exact sign test "
          "on the episodes that differ)" + (f"; interrupted: {interruption}" if interruption
                                              else ""))
    print(text_table(["controller", "base", "suite", "episodes", "base success", "success",
                      "gained", "lost", "p"], body))
    return out


def _name(label: str, interruption: Interruption | None) -> str:
    """A controller's name in the tables, interrupted or not."""
    return label + (f" + {interruption.kind} hold" if interruption else "")


def _interruption(text: str, kind: str) -> Interruption:
    try:
        start, ticks = (int(v) for v in text.split(":"))
        return Interruption(start, ticks, kind)
    except ValueError as exc:
        detail = "" if "needs" not in str(exc) else f" ({exc})"
        raise UserError(f"--interrupt must be TICK:TICKS with TICK, TICKS >= 1 (e.g. 60:50), "
                        f"got {text!r}{detail}") from None


def _plot(folder: Path, name: str, suite: str, arm: str, results: list,
          layouts: list | None = None) -> None:
    import numpy as np

    from mberil_ros.sim.plot import plot_episode
    from mberil_ros.sim.task import ReachingTask

    folder.mkdir(parents=True, exist_ok=True)
    task = ReachingTask("train" if layouts else suite, arm)
    name = name.strip("/").replace("/", "_")
    for r in results:
        task.reset(seed=r.seed, layout=layouts[r.seed] if layouts else None)
        hand = task.obs_layout.hands[0]
        plot_episode(folder / f"{name}-{suite}-{r.seed}.png", {hand: np.asarray(r.hand_path)},
                     dict(task.episode.targets), task.obstacles,
                     title=f"{name} on {suite} (seed {r.seed}): "
                           f"{'success' if r.success else 'failure'}")
