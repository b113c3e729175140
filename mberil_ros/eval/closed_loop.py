"""Closed-loop evaluation in the in-process simulator, through the policy runtime.

A policy is judged by what it does, not by an offline likelihood: every episode resets the
MuJoCo task from a layout seed, then the controller acts at 50 Hz until success, the first
collision or the suite's time limit. The same loop runs three kinds of controller:

- a checkpoint, through ``PolicyRuntime`` (the runtime the ROS policy node uses);
- ``expert``: the scripted demonstrator that made the data (the evaluator's self-test: it
  must reproduce its own success rate);
- ``hold``: a policy that never moves (the floor any learned policy must beat).

Layout seeds: datasets generated in-process use small seeds (the demo and tests use < 10^5),
evaluation uses ``EVAL_SEED_BASE + seed + i`` and training-time checkpoint selection
``VALIDATION_SEED_BASE + i``, so the three never share a layout.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from mberil_ros.sim.spaces import CONTROL_DT

EVAL_SEED_BASE = 1_000_000
VALIDATION_SEED_BASE = 2_000_000
BASELINES = ("expert", "hold")


def evaluation_seeds(offset: int, episodes: int) -> list[int]:
    """The layout seeds of evaluation episodes 0..episodes-1 from ``--seed offset``: one
    place, so `mberil eval` and `mberil deploy` with the same --seed drive the same layouts."""
    return [EVAL_SEED_BASE + offset + i for i in range(episodes)]


class Controller(Protocol):
    def start(self, task: Any, seed: int) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class RuntimeController:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    @classmethod
    def load(cls, checkpoint: str, task: Any) -> RuntimeController:
        """A checkpoint, refused unless it fits ``task``'s joints and observation layout."""
        from mberil_ros.runtime import PolicyRuntime

        return cls(PolicyRuntime.load(checkpoint, joint_names=task.obs_layout.joints,
                                      state_names=task_state_names(task)))

    def start(self, task: Any, seed: int) -> None:
        self.runtime.reset(task.observation())

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.runtime.step(obs)


START_TICKS = 25  # 0.5 s at 50 Hz: the layout's first decision, before any drift


class ExpertQueryController(RuntimeController):
    """A checkpoint's controller that also asks the scripted expert, at every tick, what it
    would command from the same state and the same last command, and records where that
    command lies under the policy: |z| per joint in the policy's sigmas (expert_z). Large
    from an episode's first ticks, the policy is wrong on states the expert visits too;
    growing late, it has drifted to states of its own first."""

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        from mberil_ros.sim.demonstrators import make_demonstrator

        self.expert = make_demonstrator("expert")
        self.z: list[np.ndarray] = []

    def start(self, task: Any, seed: int) -> None:
        super().start(task, seed)
        self.expert.reset(task.episode, seed=seed)
        self.z = []

    def act(self, obs: np.ndarray) -> np.ndarray:
        import torch  # loaded by the runtime already; imported here as the module does

        from mberil_ros.algos.bc import expert_z

        prev = self.runtime.prev_command.copy()
        expert_command = self.expert.act_from(obs, prev)
        command = self.runtime.step(obs)
        if self.runtime.last_params is not None:  # not a hold
            mu, log_std = (torch.from_numpy(p) for p in self.runtime.last_params)
            a = self.runtime.codec.action(expert_command, np.asarray(obs, np.float32), prev)
            self.z.append(expert_z(mu, log_std, torch.from_numpy(a)).numpy())
        return command

    def episode_stats(self) -> dict[str, float | None]:
        """expert_z: median |z| over the episode's ticks and joints (CALIBRATED_Z 0.67 when
        the expert's commands look like the policy's samples); expert_tail: the share beyond
        TAIL_Z (0.01 then); expert_tail_start: that share over the first START_TICKS."""
        from mberil_ros.algos.bc import TAIL_Z

        if not self.z:
            return {"expert_z": None, "expert_tail": None, "expert_tail_start": None}
        z = np.stack(self.z)
        return {"expert_z": float(np.median(z)), "expert_tail": float((z > TAIL_Z).mean()),
                "expert_tail_start": float((z[:START_TICKS] > TAIL_Z).mean())}


@dataclass(frozen=True)
class Interruption:
    """A hold in mid-episode, as ``policy_node`` makes one: from tick ``start`` on, for
    ``ticks`` ticks, the arm is sent its last command and the policy is not stepped. Then,
    by ``kind``: 'stale' resumes the policy's recurrent state where it was (the node's hold
    on stale or non-finite input); 'estop' does what the node does at ``~/clear_estop``
    (PolicyRuntime.resume: the same unless the arm moved, which it does not here); 'reset'
    starts a fresh history from the state reached (the node's ``~/reset_episode``, or an
    e-stop clear after the arm was moved)."""

    start: int
    ticks: int
    kind: str = "stale"

    KINDS = ("stale", "estop", "reset")

    def __post_init__(self) -> None:
        if self.start < 1 or self.ticks < 1:
            raise ValueError(f"an interruption needs start >= 1 and ticks >= 1, got "
                             f"{self.start}:{self.ticks}")
        if self.kind not in self.KINDS:
            raise ValueError(f"interruption kind must be one of {self.KINDS}, got {self.kind!r}")

    def __str__(self) -> str:
        return f"{self.kind} hold at tick {self.start} for {self.ticks} ticks"


class InterruptedController:
    """Any controller with an Interruption. A baseline (expert, hold) has no recurrent state:
    for it both kinds are the same hold."""

    def __init__(self, inner: Controller, interruption: Interruption) -> None:
        self.inner, self.interruption = inner, interruption

    def __getattr__(self, name: str) -> Any:  # runtime, episode_stats: the wrapped one's
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def start(self, task: Any, seed: int) -> None:
        self.inner.start(task, seed)
        self.tick, self.last = 0, None
        self.resumed: bool | None = None  # estop: whether the history was kept

    def act(self, obs: np.ndarray) -> np.ndarray:
        i, self.tick = self.tick, self.tick + 1
        first, end = self.interruption.start, self.interruption.start + self.interruption.ticks
        runtime = getattr(self.inner, "runtime", None)
        if first <= i < end and self.last is not None:
            return runtime.hold("interrupted") if runtime is not None else self.last
        if i == end and runtime is not None and self.interruption.kind != "stale":
            if self.interruption.kind == "estop":
                from mberil_ros.runtime import ESTOP_RESUME_TOLERANCE  # loaded with the policy

                self.resumed = runtime.resume(obs, ESTOP_RESUME_TOLERANCE) is not None
            else:
                runtime.reset(obs)
        self.last = np.asarray(self.inner.act(obs), dtype=float)
        return self.last


def policy_controller(policy: Any, config: dict[str, Any]) -> RuntimeController:
    """A controller on an in-memory policy (closed-loop checks while training)."""
    from mberil_ros.runtime import PolicyRuntime

    return RuntimeController(PolicyRuntime.from_policy(policy, config))


class ExpertController:
    def __init__(self) -> None:
        from mberil_ros.sim.demonstrators import make_demonstrator

        self.demo = make_demonstrator("expert")

    def start(self, task: Any, seed: int) -> None:
        self.demo.reset(task.episode, seed=seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.demo.act(obs)


class HoldController:
    def start(self, task: Any, seed: int) -> None:
        self.q0 = task.observation()[task.obs_layout.qpos].copy()

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.q0


def task_state_names(task: Any) -> list[str]:
    """The observation feature names of the task (the dataset's state_names)."""
    from mberil_ros.data.config import load_config

    return load_config(None, {"arm": task.arm}).state_names()


def make_controller(spec: str, task: Any, expert_query: bool = False) -> Controller:
    """``expert_query``: a checkpoint's controller also asks the expert (ExpertQueryController)."""
    if spec == "expert":
        return ExpertController()
    if spec == "hold":
        return HoldController()
    controller = RuntimeController.load(spec, task)
    return ExpertQueryController(controller.runtime) if expert_query else controller


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    collision: bool
    final_distance: float  # m, worst active hand to its target
    time_to_goal: float | None  # s, None when not reached
    ticks: int
    smoothness: float  # rad/tick^2, mean |second difference| of the commands
    sign_changes: float  # per joint and second: reversals of the command's direction
    hand_path: list[list[float]] = field(default_factory=list)  # kept only when asked
    # hold mode only (None otherwise): after a success the controller keeps running until
    # the time limit; where the hand is then, and whether it is still within the tolerance
    # without having touched anything (an episode that never reached: its final distance)
    settled_distance: float | None = None
    held: bool | None = None
    # --interrupt-as estop only: the policy's history was kept at the clear (the arm was
    # within ESTOP_RESUME_TOLERANCE of the held command); None otherwise
    resumed: bool | None = None
    # expert query only (ExpertQueryController; None otherwise)
    expert_z: float | None = None
    expert_tail: float | None = None
    expert_tail_start: float | None = None


def run_episode(task: Any, controller: Controller, seed: int, keep_path: bool = False,
                layout: Any = None, hold: bool = False) -> EpisodeResult:
    """One episode from layout seed ``seed``, or of ``layout`` (an Episode) when given.
    ``hold``: after a success the controller goes on until the time limit (a robot has no
    success signal to stop a policy); the episode's metrics stay those of its first end."""
    task.reset(seed=seed, layout=layout)
    controller.start(task, seed)
    obs = task.observation()
    hand = task.obs_layout.hands[0]
    path = [task.hand_positions()[hand].tolist()]
    commands, done, info = [], False, task.status()
    while not done:
        u = np.asarray(controller.act(obs), dtype=float)
        obs, _, done, info = task.step(u)
        targets = task.joint_targets()  # what the sim applied, after its own clamps
        commands.append([targets[j] for j in task.obs_layout.joints])
        if keep_path:
            path.append(task.hand_positions()[hand].tolist())
    cmd = np.asarray(commands)
    result = EpisodeResult(
        seed=seed, success=bool(info["success"]), collision=bool(info["collision"]),
        final_distance=float(info["distance"]),
        time_to_goal=float(info["time"]) if info["success"] else None, ticks=len(cmd),
        smoothness=command_smoothness(cmd), sign_changes=sign_change_rate(cmd, CONTROL_DT),
        hand_path=path if keep_path else [])
    if isinstance(controller, InterruptedController):
        result.resumed = controller.resumed
    if hasattr(controller, "episode_stats"):  # an ExpertQueryController, maybe interrupted
        for k, v in controller.episode_stats().items():
            setattr(result, k, v)
    if hold:
        end = info  # a timeout or collision already ran to its end
        if info["success"]:
            while not end["collision"] and task.time < task.time_limit - 1e-9:
                obs, _, _, end = task.step(np.asarray(controller.act(obs), dtype=float))
        result.settled_distance = float(end["distance"])
        result.held = bool(end["success"] and not end["collision"])
    return result


def command_smoothness(cmd: np.ndarray) -> float:
    if len(cmd) < 3:
        return 0.0
    return float(np.abs(np.diff(cmd, 2, axis=0)).mean())


def sign_change_rate(cmd: np.ndarray, dt: float, deadband: float = 1e-4) -> float:
    """Direction reversals of each joint's command per second (chatter shows as ~1/dt/2).
    Steps smaller than ``deadband`` rad are not a direction."""
    if len(cmd) < 3:
        return 0.0
    d = np.diff(cmd, axis=0)
    s = np.sign(np.where(np.abs(d) > deadband, d, 0.0))
    flips = (s[1:] * s[:-1]) < 0
    return float(flips.sum() / (cmd.shape[1] * len(cmd) * dt))


# ---- parallel batches ------------------------------------------------------------------------
_cache: dict[tuple[str, str, str], tuple[Any, Controller]] = {}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # one episode per process: threads would only contend


def _run_seeds(spec: str, suite: str, arm: str, seeds: list[int], keep: frozenset[int],
               layouts: str | None = None, hold: bool = False,
               expert_query: bool = False, interruption: Interruption | None = None
               ) -> list[dict[str, Any]]:
    key = (spec, suite, arm, layouts, expert_query)
    if key not in _cache:  # a worker keeps its tasks and loaded policies between chunks
        from mberil_ros.sim.layouts import load_layouts
        from mberil_ros.sim.task import ReachingTask

        if layouts:  # user layouts: "seeds" index the file's layouts (checked by the caller);
            # they belong to no suite, so they get the longest suite time limit
            from mberil_ros.sim.suites import SUITES

            limit = max(s.time_limit for s in SUITES.values())
            task = ReachingTask("train", arm, time_limit=limit)
            episodes = load_layouts(layouts, check=False)
        else:
            task, episodes = ReachingTask(suite, arm), None
        _cache[key] = (task, make_controller(spec, task, expert_query), episodes)
    task, controller, episodes = _cache[key]
    if interruption is not None:
        controller = InterruptedController(controller, interruption)
    return [asdict(run_episode(task, controller, s, s in keep,
                               episodes[s] if episodes else None, hold)) for s in seeds]


class Evaluator:
    """Closed-loop episodes over a pool of worker processes that stays up between calls
    (start-up, imports and policy loading are paid once per worker)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Evaluator:
        if self.workers > 1:
            import multiprocessing

            ctx = multiprocessing.get_context("spawn")  # no forked torch / MuJoCo state
            self.pool = ProcessPoolExecutor(self.workers, mp_context=ctx,
                                            initializer=_init_worker)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def run(self, spec: str, suite: str, seeds: list[int], *, arm: str = "right",
            keep_paths: int = 0, progress: Any = None, layouts: str | None = None,
            hold: bool = False, expert_query: bool = False,
            interruption: Interruption | None = None) -> list[EpisodeResult]:
        """``spec`` (a checkpoint, 'expert' or 'hold') on ``seeds`` of ``suite`` (with
        ``layouts``, a layouts YAML: on the layouts of these indices), in seed order;
        ``progress(n)`` is called as chunks finish; ``hold``: see run_episode;
        ``expert_query``: see ExpertQueryController (checkpoints only); ``interruption``:
        see Interruption."""
        keep = frozenset(seeds[:keep_paths])
        if self.pool is None:
            out = []
            for s in seeds:
                out += _run_seeds(spec, suite, arm, [s], keep, layouts, hold, expert_query,
                                  interruption)
                if progress:
                    progress(1)
        else:
            out = []
            futures = [self.pool.submit(_run_seeds, spec, suite, arm, seeds[i:i + 4], keep,
                                        layouts, hold, expert_query, interruption)
                       for i in range(0, len(seeds), 4)]
            for f in as_completed(futures):
                part = f.result()
                out += part
                if progress:
                    progress(len(part))
            order = {s: i for i, s in enumerate(seeds)}
            out.sort(key=lambda r: order[r["seed"]])
        return [EpisodeResult(**r) for r in out]


def evaluate(spec: str, suite: str, seeds: list[int], *, arm: str = "right",
             workers: int | None = None, keep_paths: int = 0, progress: Any = None
             ) -> list[EpisodeResult]:
    """One batch with its own pool (see Evaluator to run several)."""
    with Evaluator(min(workers or os.cpu_count() or 1, len(seeds))) as ev:
        return ev.run(spec, suite, seeds, arm=arm, keep_paths=keep_paths, progress=progress)


def summarize(results: list[EpisodeResult]) -> dict[str, float]:
    n = max(len(results), 1)
    times = [r.time_to_goal for r in results if r.time_to_goal is not None]
    return {
        "episodes": len(results),
        "success": sum(r.success for r in results) / n,
        "collision": sum(r.collision for r in results) / n,
        "final_distance": float(np.mean([r.final_distance for r in results])),
        "time_to_goal": float(np.mean(times)) if times else None,
        "smoothness": float(np.mean([r.smoothness for r in results])),
        "sign_changes": float(np.mean([r.sign_changes for r in results])),
        **({"held": sum(bool(r.held) for r in results) / n,
            "settled_distance": float(np.median([r.settled_distance for r in results]))}
           if results and results[0].held is not None else {}),
        **_resumed_summary(results),
        **(_expert_query_summary(results)
           if any(r.expert_z is not None for r in results) else {}),
    }


def _resumed_summary(results: list[EpisodeResult]) -> dict[str, float]:
    """--interrupt-as estop: the share of the episodes still running at the clear in which
    the policy's history was kept."""
    cleared = [r.resumed for r in results if r.resumed is not None]
    return {"resumed": sum(cleared) / len(cleared)} if cleared else {}


def _expert_query_summary(results: list[EpisodeResult]) -> dict[str, float | None]:
    """Medians over episodes of expert_z and expert_tail_start, split by outcome."""
    def median(values: list[float]) -> float | None:
        return float(np.median(values)) if values else None

    queried = [r for r in results if r.expert_z is not None]
    return {"expert_z": median([r.expert_z for r in queried]),
            "expert_z_success": median([r.expert_z for r in queried if r.success]),
            "expert_z_failure": median([r.expert_z for r in queried if not r.success]),
            "expert_tail_start_success": median([r.expert_tail_start for r in queried
                                                 if r.success]),
            "expert_tail_start_failure": median([r.expert_tail_start for r in queried
                                                 if not r.success])}
