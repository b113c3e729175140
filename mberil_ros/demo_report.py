"""`mberil demo`'s report: OUT/report.json, the plots and the table printed at the end.

Every number comes from the stages' own outputs (eval.json of `mberil eval`, the run's
metrics.jsonl, the deploy rows): nothing here computes a result of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mberil_ros.errors import UserError
from mberil_ros.eval.table import text_table
from mberil_ros.paths import write_text_atomic

NAMES = {"expert": "scripted expert", "hold": "hold still"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read ({exc})") from None


def write_report(out: Path, dataset: dict[str, Any], run_dir: Path, eval_json: Path,
                 deploy: dict[str, Any], stages: dict[str, Any]) -> dict[str, Any]:
    """Gather the stages' results into OUT/report.json (atomically) and draw the plots."""
    evaluation = _read_json(eval_json)
    rows = [{"controller": NAMES.get(r["controller"], "learned policy"), "suite": r["suite"],
             **r["summary"]} for r in evaluation["results"]]
    metrics = _metrics(run_dir)
    evals = [m for m in metrics if m.get("group") == "eval"]
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    report = {
        "dataset": {k: v for k, v in dataset.items() if k not in ("settings", "seconds")},
        "checkpoint": str(run_dir / "checkpoints" / "last"),
        "training": {"steps": max((m["step"] for m in metrics), default=0),
                     "last_eval": {k: v for k, v in (evals[-1] if evals else {}).items()
                                   if k in ("step", "nll_pi", "nll_m")}},
        "eval_seeds": evaluation.get("seeds"),
        "closed_loop": rows,
        "ros": {k: v for k, v in deploy.items() if k not in ("settings", "seconds")},
        "stage_seconds": {k: v.get("seconds") for k, v in stages.items()},
        "plots": [str(p) for p in (_success_plot(plots / "success.png", rows),
                                   _training_plot(plots / "training.png", metrics))],
    }
    write_text_atomic(out / "report.json", json.dumps(report, indent=1))
    return report


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _success_plot(path: Path, rows: list[dict[str, Any]]) -> Path:
    plt = _pyplot()
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    controllers = list(dict.fromkeys(r["controller"] for r in rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(controllers), 1)
    for k, name in enumerate(controllers):
        values = [next((r["success"] for r in rows if r["suite"] == s and
                        r["controller"] == name), 0.0) for s in suites]
        ax.bar([i + k * width for i in range(len(suites))], values, width, label=name)
    ax.set_xticks([i + width * (len(controllers) - 1) / 2 for i in range(len(suites))], suites)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate (closed loop)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _training_plot(path: Path, metrics: list[dict[str, Any]]) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    train = [m for m in metrics if m.get("group") == "train"]
    for key in ("loss/bc", "loss/actor", "loss/model_mle", "loss/disc_pi"):
        points = [(m["step"], m[key]) for m in train if key in m]
        if points:
            axes[0].plot(*zip(*points, strict=True), label=key)
    axes[0].set_yscale("symlog")
    axes[0].set_title("training losses")
    evals = [m for m in metrics if m.get("group") == "eval"]
    for key in ("nll_pi", "nll_m"):
        points = [(m["step"], m[key]) for m in evals if key in m]
        if points:
            axes[1].plot(*zip(*points, strict=True), "o-", label=key)
    axes[1].set_title("held-out NLL")
    for ax in axes:
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def summary_text(report: dict[str, Any]) -> str:
    """The closed-loop table (and the ROS episodes) as printed at the end of the demo."""
    d = report["dataset"]
    lines = [f"dataset: {d.get('episodes')} episodes ({d.get('expert')} expert), "
             f"{d.get('frames')} frames at {d.get('fps')} Hz; checkpoint {report['checkpoint']}"]
    body = [[r["controller"], r["suite"], str(r["episodes"]), f"{r['success']:.2f}",
             f"{r['collision']:.2f}", f"{r['final_distance']:.3f}"]
            for r in report["closed_loop"]]
    lines.append(text_table(["controller", "suite", "episodes", "success", "collision",
                             "final_dist_m"], body))
    ros = report["ros"]
    if ros.get("skipped"):
        lines.append(f"ROS (sim_node + policy_node): skipped, {ros['skipped']}")
    elif ros.get("episodes") is not None:
        eps = ros["episodes"]
        lines.append(f"ROS (sim_node + policy_node, train suite): "
                     f"{sum(bool(e['success']) for e in eps)}/{len(eps)} episodes reached")
    lines.append("plots: " + ", ".join(report["plots"]))
    return "\n".join(lines)
