"""`mberil compare`'s report: results.md (mean +- std over seeds), results.json, plots and
commands.txt, gathered from the finished jobs' eval.json files (nothing is computed here
but means and standard deviations)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from mberil_ros.compare import eval_suites
from mberil_ros.paths import write_text_atomic

COMMIT = "commit.txt"  # in each job folder: the code's commit when the job started


def code_commit() -> str:
    """This checkout's commit, marked when the package or config folders differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "mberil_ros", "config"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" (with uncommitted changes)" if dirty else "")


def job_numbers(eval_json: Path) -> dict[str, float]:
    """success per suite and offline NLLs per test set of one job's eval.json."""
    report = json.loads(eval_json.read_text())
    out = {f"success/{r['suite']}": r["summary"]["success"] for r in report["results"]
           if r["controller"] not in ("expert", "hold")}
    nlls = report.get("offline_nll", {})
    if any("nll_pi" in v for v in nlls.values()):  # written before 2026-12-02: {dataset: numbers}
        nlls = {"the job's checkpoint": nlls}
    for per_dataset in nlls.values():  # {checkpoint: {dataset: numbers}}, the job's one
        for dataset, nll in per_dataset.items():
            test = Path(dataset).name
            for key in ("nll_pi", "nll_pi_trim", "nll_m"):
                if key in nll:
                    out[f"{key}/{test}"] = nll[key]
    return out


def _cell(values: list[float], digits: int) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def write_report(plan: Any, jobs: list[Any], config_path: Path) -> Path:
    """Write OUT/results.md, results.json, commands.txt and plots/success.png; returns the
    markdown file. Unfinished jobs are listed as missing."""
    groups: dict[tuple[str, str], dict[str, list[float]]] = {}
    per_job, missing = {}, []
    for job in jobs:
        path = plan.job_dir(job) / "eval.json"
        if not path.exists():
            missing.append(job.key)
            continue
        numbers = job_numbers(path)
        per_job[job.key] = numbers
        group = groups.setdefault((job.dataset, job.group), {})
        for k, v in numbers.items():
            group.setdefault(k, []).append(v)
    suites = eval_suites(plan.cfg)
    tests = [p.name for p in plan.test_sets()]
    header = (["dataset", "method", "seeds"] + [f"success {s}" for s in suites]
              + [f"NLL_pi {t}" for t in tests] + [f"NLL_pi trim {t}" for t in tests]
              + [f"NLL_m {t}" for t in tests])
    lines = [f"# mberil compare: {config_path}", "",
             f"Report written at commit {code_commit()}; command `mberil compare --config "
             f"{config_path}`. "
             "Success: closed loop on fresh layouts ("
             + ("`best` checkpoints, chosen on validation layouts of the train suite"
                if plan.cfg.eval_checkpoint == "best" else "`last` checkpoints")
             + "); NLL on expert demonstrations of the test sets (lower is better; "
             "NLL_pi trim: without the worst 1 % of the steps). "
             "Mean ± std over seeds.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (dataset, group), values in sorted(groups.items()):
        seeds = len(next(iter(values.values()), []))
        row = ([dataset, group, str(seeds)]
               + [_cell(values.get(f"success/{s}", []), 2) for s in suites]
               + [_cell(values.get(f"nll_pi/{t}", []), 2) for t in tests]
               + [_cell(values.get(f"nll_pi_trim/{t}", []), 2) for t in tests]
               + [_cell(values.get(f"nll_m/{t}", []), 2) for t in tests])
        lines.append("| " + " | ".join(row) + " |")
    lines += _paired_with_warm_start(jobs, per_job, suites, tests)
    ran_at: dict[str, int] = {}
    for job in jobs:
        if job.key not in per_job:
            continue
        path = plan.job_dir(job) / COMMIT
        commit = path.read_text().strip() if path.exists() else "not recorded"
        ran_at[commit] = ran_at.get(commit, 0) + 1
    lines += ["", "Jobs ran at commit " + ", ".join(f"{c} ({n} jobs)"
                                                   for c, n in sorted(ran_at.items())) + "."]
    if missing:
        lines += ["", f"Not finished ({len(missing)}): " + ", ".join(missing)]
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    commands = [shlex.join(argv) for _, argv in plan.dataset_commands()]
    for job in jobs:
        commands += [shlex.join(plan.train_command(job)), shlex.join(plan.eval_command(job))]
    write_text_atomic(out / "commands.txt", "\n".join(commands) + "\n")
    write_text_atomic(out / "results.json", json.dumps(
        {"commit": code_commit(), "config": str(config_path), "jobs": per_job,
         "ran_at": ran_at, "missing": missing}, indent=1))
    if groups:
        _plot(out / "plots" / "success.png", groups, suites)
    md = out / "results.md"
    write_text_atomic(md, "\n".join(lines) + "\n")
    return md


def _paired_with_warm_start(jobs: list[Any], per_job: dict[str, dict[str, float]],
                            suites: list[str], tests: list[str]) -> list[str]:
    """Each warm-started job minus the job it started from (same dataset, inputs and seed):
    the adversarial phase's own effect, without the seed-to-seed spread of the warm start."""
    diffs: dict[tuple[str, str], dict[str, list[float]]] = {}
    for job in jobs:
        warm = getattr(job, "warm_start", None)
        if warm is None or job.key not in per_job or warm.key not in per_job:
            continue
        mine, theirs = per_job[job.key], per_job[warm.key]
        group = diffs.setdefault((job.dataset, f"{job.group} - {warm.group}"), {})
        for k in mine.keys() & theirs.keys():
            group.setdefault(k, []).append(mine[k] - theirs[k])
    if not diffs:
        return []
    header = (["dataset", "job - its warm start", "pairs"] + [f"Δ success {s}" for s in suites]
              + [f"Δ NLL_pi {t}" for t in tests])
    lines = ["", "Each warm-started job minus the BC job it started from (same dataset, "
             "inputs and seed): mean ± std of the paired differences.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (dataset, group), values in sorted(diffs.items()):
        pairs = len(next(iter(values.values()), []))
        lines.append("| " + " | ".join(
            [dataset, group, str(pairs)]
            + [_cell(values.get(f"success/{s}", []), 2) for s in suites]
            + [_cell(values.get(f"nll_pi/{t}", []), 2) for t in tests]) + " |")
    return lines


def _plot(path: Path, groups: dict[tuple[str, str], dict[str, list[float]]],
          suites: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted(groups)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(keys)), 4.5))
    width = 0.8 / len(suites)
    for k, suite in enumerate(suites):
        means = [np.mean(groups[g].get(f"success/{suite}", [0.0])) for g in keys]
        errs = [np.std(v, ddof=1) if len(v) > 1 else 0.0  # as in the table
                for v in (groups[g].get(f"success/{suite}", [0.0]) for g in keys)]
        ax.bar([i + k * width for i in range(len(keys))], means, width, yerr=errs,
               label=suite, capsize=2)
    middle = width * (len(suites) - 1) / 2
    ax.set_xticks([i + middle for i in range(len(keys))], [f"{d}\n{g}" for d, g in keys],
                  rotation=60, ha="right", fontsize=7)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success (closed loop)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)
