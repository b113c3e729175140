"""`mberil compare --config config/compare.yaml`: the comparison behind the results table.

    datasets  `mberil sim-dataset` for each dataset of the config and an expert-only test set
              per held-out suite (made once, skipped when present)
    jobs      method x policy input x dataset x seed (+ the alpha ablation): `mberil train`,
              then `mberil eval` of the run's `best` checkpoint on every suite, with the
              offline NLLs on the test sets; each job is its own process
    report    results.md (mean +- std over seeds), results.json, plots/, commands.txt

A method with `init_from: OTHER` starts its policy from the `best` checkpoint of OTHER's job
on the same dataset, inputs and seed (Offline-MB-ERIL from its BC row: the warm start is
trained once, and the table compares the adversarial phase with exactly the policy it
started from); such jobs run after the others. A job is done when its eval.json exists; a
training that was interrupted is resumed. With --shard K/N a machine runs every N-th
(dataset, inputs, seed) family of jobs from the K-th, so a warm start and the jobs that use
it stay on one machine (share OUTPUT between machines, run the report with --report-only
once all are done); --device puts a shard on one GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mberil_ros.errors import UserError
from mberil_ros.paths import config_file, write_text_atomic
from mberil_ros.settings import from_mapping, read_yaml, setting

SETTINGS = "settings.json"  # a job's settings, recorded when it starts


@dataclass
class CompareConfig:
    """config/compare.yaml (every key documented there)."""

    output: str = setting("results/compare", "folder for datasets, jobs and the report")
    seeds: list = setting([0], "training seeds")
    datasets: dict = setting({}, "name: sim-dataset settings")
    test: dict = setting({}, "held-out test sets for offline NLL")
    methods: dict = setting({}, "name: {config, overrides}")
    policy_inputs: list = setting(["state"], "policy inputs")
    alpha_ablation: list = setting([], "datasets with alpha 0 too")
    train: list = setting([], "overrides for every training")
    eval_episodes: int = setting(100, "closed-loop episodes per suite")
    eval_suites: list = setting(["all"], "suites each job is evaluated on (all: the benchmark)")
    eval_checkpoint: str = setting("best", "checkpoint evaluated: best | last")
    eval_seed: int = setting(0, "mberil eval --seed (episode seeds)")


@dataclass
class Job:
    dataset: str
    method: str
    inputs: str
    seed: int
    alpha0: bool = False  # the alpha ablation: alpha forced to 0
    warm_start: Job | None = None  # the job whose `best` policy this one starts from

    @property
    def group(self) -> str:
        return f"{self.method}-{self.inputs}" + ("-alpha0" if self.alpha0 else "")

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.group}/seed{self.seed}"

    @property
    def family(self) -> tuple[str, str, int]:
        return (self.dataset, self.inputs, self.seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="comparison YAML (default: the package's config/compare.yaml)")
    parser.add_argument("--jobs", type=int, default=1, help="jobs run at once (default 1)")
    parser.add_argument("--shard", default="0/1", metavar="K/N",
                        help="run only the (dataset, inputs, seed) families K, K+N, K+2N, ... "
                        "of jobs (default 0/1: all)")
    parser.add_argument("--only", action="append", default=[], metavar="TEXT",
                        help="run only jobs whose name (DATASET/METHOD-INPUT/seedS) contains "
                        "TEXT (repeatable: any of them)")
    parser.add_argument("--device", help="training device of this shard, e.g. cuda:1")
    parser.add_argument("--launcher", default="", metavar="CMD",
                        help="prefix of each training, e.g. 'torchrun --nproc_per_node=2' "
                        "(DDP over a machine's GPUs)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    parser.add_argument("--report-only", action="store_true",
                        help="only gather the finished jobs into the report")


def load_config(path: Path) -> CompareConfig:
    cfg = from_mapping(CompareConfig, read_yaml(path), source=path)
    if not cfg.datasets or not cfg.methods or not cfg.seeds:
        raise UserError(f"{path}: datasets, methods and seeds must not be empty")
    if cfg.eval_checkpoint not in ("best", "last"):
        raise UserError(f"{path}: eval_checkpoint: expected best or last, got "
                        f"{cfg.eval_checkpoint!r}")
    if cfg.eval_seed < 0:
        raise UserError(f"{path}: eval_seed must be >= 0, got {cfg.eval_seed}")
    _suites(path, "eval_suites", cfg.eval_suites)
    for name, m in cfg.methods.items():
        if (not isinstance(m, dict) or "config" not in m
                or set(m) - {"config", "overrides", "init_from"}):
            raise UserError(f"{path}: methods.{name}: expected {{config: YAML, overrides: "
                            f"[...], init_from: METHOD (optional)}}")
        start = m.get("init_from")
        if start is not None and (start not in cfg.methods or start == name
                                  or cfg.methods[start].get("init_from")):
            raise UserError(f"{path}: methods.{name}.init_from: {start!r} is not another "
                            f"method of this file that starts from scratch")
    for name, d in cfg.datasets.items():
        unknown = set(d) - {"expert", "suboptimal", "expert_fraction", "seed", "settle_ticks",
                            "suite", "methods", "policy_inputs"}
        if not isinstance(d, dict) or "expert" not in d or unknown:
            raise UserError(f"{path}: datasets.{name}: expected expert, suboptimal, "
                            f"expert_fraction, seed, settle_ticks, suite, methods, "
                            f"policy_inputs")
        if "suite" in d:
            _suites(path, f"datasets.{name}.suite", [d["suite"]])
        for key, known in (("methods", cfg.methods), ("policy_inputs", cfg.policy_inputs)):
            extra = sorted(set(d.get(key, [])) - set(known))
            if extra:
                raise UserError(f"{path}: datasets.{name}.{key}: {extra} not in the "
                                f"file's {key}")
            if key == "methods":
                for m in d.get(key, []):
                    start = cfg.methods[m].get("init_from")
                    if start and start not in d[key]:
                        raise UserError(f"{path}: datasets.{name}.methods: {m} starts from "
                                        f"{start}, which must run on this dataset too")
    missing = sorted(set(cfg.alpha_ablation) - set(cfg.datasets))
    if missing:
        raise UserError(f"{path}: alpha_ablation: unknown datasets {missing}")
    return cfg


def _suites(path: Path, key: str, names: Any) -> list[str]:
    """Suite names of ``key`` (``all``: the benchmark's), refused in one line if unknown."""
    from mberil_ros.sim.suites import suite_names

    if not isinstance(names, list) or not names:
        raise UserError(f"{path}: {key}: expected a list of suite names, got {names!r}")
    try:
        return suite_names([str(n) for n in names], [])
    except UserError as exc:
        raise UserError(f"{path}: {key}: {str(exc).removeprefix('--suite: ')}") from None


def eval_suites(cfg: CompareConfig) -> list[str]:
    """The suites every job is evaluated on (checked by load_config), in report order."""
    from mberil_ros.sim.suites import suite_names

    return suite_names(cfg.eval_suites, [])


def _train_config(method: dict) -> Any:
    """The method's training config (its YAML + overrides, validated on the way)."""
    from mberil_ros.algos.train_config import load_train_config

    overrides = ["dataset=<generated>", *method.get("overrides", [])]
    return load_train_config(Path(_yaml(method["config"])), overrides)


def _check_warm_starts(cfg: CompareConfig, resolved: dict[str, Any]) -> None:
    """A policy can only start from a checkpoint with its own network and data settings:
    say so before any job runs, not when the first warm-started job loads it hours later."""
    for name, m in cfg.methods.items():
        start = m.get("init_from")
        if start is None:
            continue
        for part in ("network", "data"):
            mine, theirs = (asdict(getattr(resolved[n].algo, part)) for n in (name, start))
            differ = sorted(k for k in mine if k in theirs and mine[k] != theirs[k])
            if differ:
                raise UserError(f"methods.{name}: init_from {start} needs the same "
                                f"algo.{part} settings, but {differ} differ")


def all_jobs(cfg: CompareConfig) -> list[Job]:
    """Every job, those that start from another's policy after the others."""
    jobs: dict[str, Job] = {}
    resolved = {name: _train_config(m) for name, m in cfg.methods.items()}
    _check_warm_starts(cfg, resolved)
    algorithms = {name: r.run.algorithm for name, r in resolved.items()}
    for dataset, spec in cfg.datasets.items():
        names = spec.get("methods", list(cfg.methods))
        for method in sorted(names, key=lambda m: bool(cfg.methods[m].get("init_from"))):
            mberil = algorithms[method] == "offline_mberil"
            start = cfg.methods[method].get("init_from")
            for inputs in spec.get("policy_inputs", cfg.policy_inputs):
                for seed in cfg.seeds:
                    warm = jobs[Job(dataset, start, inputs, int(seed)).key] if start else None
                    variants = [False, True] if mberil and dataset in cfg.alpha_ablation \
                        else [False]
                    for alpha0 in variants:
                        job = Job(dataset, method, inputs, int(seed), alpha0, warm)
                        jobs[job.key] = job
    return sorted(jobs.values(), key=lambda j: j.warm_start is not None)


def _mberil(*argv: str) -> list[str]:
    return [sys.executable, "-m", "mberil_ros.cli", *argv]


def _yaml(name: str) -> str:
    path = Path(name)
    return str(path if path.is_file() else config_file(name))


class Plan:
    """Paths and command lines of one comparison."""

    def __init__(self, cfg: CompareConfig, args: argparse.Namespace) -> None:
        self.cfg, self.args = cfg, args
        self.out = Path(cfg.output)

    def dataset(self, name: str) -> Path:
        return self.out / "datasets" / name

    def test_sets(self) -> list[Path]:
        return [self.out / "test" / s for s in self.cfg.test.get("suites", [])]

    def dataset_commands(self) -> list[tuple[Path, list[str]]]:
        out = []
        for name, d in self.cfg.datasets.items():
            out.append((self.dataset(name), _mberil(
                "sim-dataset", str(self.dataset(name)), "--expert", str(d["expert"]),
                "--suboptimal", str(d.get("suboptimal", 0)), "--seed", str(d.get("seed", 0)),
                *_passed(d, "expert_fraction", "--expert-fraction"),
                *_passed(d, "suite", "--suite"), *_settle(d))))
        t = self.cfg.test
        for path in self.test_sets():
            out.append((path, _mberil(
                "sim-dataset", str(path), "--expert", str(t.get("episodes", 100)),
                "--suboptimal", "0", "--suite", path.name, "--seed", str(t.get("seed", 900000)),
                *_settle(t))))
        return out

    def job_dir(self, job: Job) -> Path:
        return self.out / "jobs" / job.key

    def overrides(self, job: Job) -> list[str]:
        """The `mberil train` overrides of a fresh job (on top of its method's YAML)."""
        m = self.cfg.methods[job.method]
        out = [f"dataset={self.dataset(job.dataset)}", f"output_dir={self.job_dir(job)}",
               "name=run", f"seed={job.seed}", *self.cfg.train, *m.get("overrides", []),
               f"algo.network.policy_inputs={job.inputs}"]
        if job.alpha0:
            out.append("algo.alpha=0.0")
        if job.warm_start is not None:
            out.append(f"algo.init_policy={self.best(job.warm_start)}")
        if self.args.device:
            out.append(f"device={self.args.device}")
        return out

    def train_command(self, job: Job) -> list[str]:
        run = self.job_dir(job) / "run"
        prefix = shlex.split(self.args.launcher)
        if (run / "checkpoints" / "last").exists():
            argv = ["train", "--resume", str(run)]
        else:
            argv = ["train", "--config", _yaml(self.cfg.methods[job.method]["config"]),
                    *self.overrides(job)]
        if prefix:
            return [*prefix, "-m", "mberil_ros.cli", *argv]
        return _mberil(*argv)

    def settings(self, job: Job) -> dict[str, Any]:
        """What decides a job's numbers: its resolved training config (the device aside) and
        its evaluation's arguments. Recorded when the job starts (settings.json)."""
        from mberil_ros.algos.train_config import load_train_config

        m = self.cfg.methods[job.method]
        train = load_train_config(Path(_yaml(m["config"])), self.overrides(job))
        run = {k: v for k, v in asdict(train.run).items() if k != "device"}
        return json.loads(json.dumps({"config": Path(m["config"]).name, "run": run,
                                      "algo": asdict(train.algo),
                                      "eval": self.eval_command(job)[3:]}, default=str))

    def best(self, job: Job) -> Path:
        return self.job_dir(job) / "run" / "checkpoints" / "best"

    def eval_command(self, job: Job) -> list[str]:
        nll = [a for p in self.test_sets() for a in ("--nll", str(p))]
        ckpt = self.job_dir(job) / "run" / "checkpoints" / self.cfg.eval_checkpoint
        suites = [a for s in self.cfg.eval_suites for a in ("--suite", str(s))]
        # (the defaults' arguments are left out, so jobs recorded before these keys existed
        # keep their settings)
        seed = ["--seed", str(self.cfg.eval_seed)] if self.cfg.eval_seed else []
        return _mberil("eval", str(ckpt), *suites, "--episodes", str(self.cfg.eval_episodes),
                       *seed, "--workers", "1", *nll,
                       "--json", str(self.job_dir(job) / "eval.json"))


def _run_logged(argv: list[str], log: Path) -> None:
    with log.open("a") as f:
        f.write(f"$ {shlex.join(argv)}\n")
        f.flush()
        code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if code != 0:
        raise UserError(f"`{shlex.join(argv[2:6])} ...` failed (exit {code}); see {log}")


def _passed(spec: dict, key: str, flag: str) -> list[str]:
    """``flag VALUE`` when the config sets ``key``; absent, sim-dataset's own default applies
    (one default per setting, the same with and without compare)."""
    return [flag, str(spec[key])] if key in spec else []


def _settle(spec: dict) -> list[str]:
    """sim-dataset's --settle-ticks when a dataset (or the test sets) pins it; absent: the
    default (spaces.SETTLE_TICKS)."""
    return _passed(spec, "settle_ticks", "--settle-ticks")


def _make_dataset(item: tuple[Path, list[str]]) -> None:
    dest, argv = item
    dest.parent.mkdir(parents=True, exist_ok=True)
    print(f"making {dest} ...", flush=True)
    _run_logged(argv + ["--overwrite"], dest.parent / f"{dest.name}.log")


def _first_difference(old: Any, new: Any, where: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return _first_difference(old.get(key), new.get(key), f"{where}.{key}")
    return f"{where.lstrip('.')}: {old!r} -> {new!r}"


def check_settings(plan: Plan, jobs: list[Job]) -> None:
    """Refuse to mix results of other settings into the table: a job that ran (or started)
    with settings the config no longer gives is never reused or silently replaced."""
    changed = []
    for job in jobs:
        path = plan.job_dir(job) / SETTINGS
        if path.exists():
            old, now = json.loads(path.read_text()), plan.settings(job)
            if old != now:
                changed.append(f"{job.key} ({_first_difference(old, now)})")
    if changed:
        raise UserError(f"{len(changed)} job(s) in {plan.out / 'jobs'} ran with other settings "
                        f"than the config gives now: {changed[0]}"
                        + (f" and {len(changed) - 1} more" if len(changed) > 1 else "")
                        + "; use another `output:` folder, or delete those job folders")


def run_job(plan: Plan, job: Job) -> str:
    folder = plan.job_dir(job)
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / SETTINGS).exists():
        from mberil_ros.compare_report import COMMIT, code_commit

        write_text_atomic(folder / SETTINGS, json.dumps(plan.settings(job), indent=1))
        write_text_atomic(folder / COMMIT, code_commit() + "\n")
    if not (folder / "train.done").exists():  # (run() checked that its warm start is)
        _run_logged(plan.train_command(job), folder / "train.log")
        (folder / "train.done").touch()
    _run_logged(plan.eval_command(job), folder / "eval.log")
    return job.key


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard: expected K/N, got {text!r}") from None
    if not 0 <= k < n:
        raise UserError(f"--shard: need 0 <= K < N, got {text!r}")
    return k, n


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mberil_ros.compare_report import write_report

    path = args.config or config_file("compare.yaml")
    cfg = load_config(path)
    k, n = _shard(args.shard)
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    plan = Plan(cfg, args)
    every = all_jobs(cfg)
    families = {f: i for i, f in enumerate(dict.fromkeys(j.family for j in every))}
    jobs = [j for j in every if families[j.family] % n == k
            and (not args.only or any(t in j.key for t in args.only))]
    check_settings(plan, jobs)
    todo = [j for j in jobs if not (plan.job_dir(j) / "eval.json").exists()]
    planned = {j.key for j in todo}
    for j in todo:
        warm = j.warm_start
        if (warm is not None and warm.key not in planned
                and not (plan.job_dir(warm) / "train.done").exists()):
            raise UserError(f"{j.key}: its warm start {warm.key} is neither trained nor among "
                            f"the jobs to run (add it with --only, or keep it on this shard)")
    if args.dry_run:
        for dest, argv in plan.dataset_commands():
            print(("# exists: " if dest.exists() else "") + shlex.join(argv))
        for j in todo:
            print(shlex.join(plan.train_command(j)) + "\n" + shlex.join(plan.eval_command(j)))
        print(f"# {len(todo)} of {len(jobs)} jobs to run")
        return 0
    if not args.report_only:
        plan.out.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(_make_dataset, [d for d in plan.dataset_commands()
                                          if not (d[0] / "meta" / "info.json").exists()]))
            print(f"{len(todo)} of {len(jobs)} jobs to run, {args.jobs} at once; logs in "
                  f"{plan.out / 'jobs'}/*/*/*/", flush=True)
            # two waves: a job that starts from another's policy waits for the first
            waves = ([j for j in todo if j.warm_start is None],
                     [j for j in todo if j.warm_start is not None])
            with tqdm(total=len(todo), unit="job") as bar:
                for wave in waves:
                    for key in pool.map(lambda j: run_job(plan, j), wave):
                        bar.set_postfix_str(key)
                        bar.update(1)
        print(f"jobs done in {time.monotonic() - started:.0f} s")
    report = write_report(plan, all_jobs(cfg), path)
    print(report.read_text())
    return 0
