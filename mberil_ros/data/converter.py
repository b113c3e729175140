"""Bag -> dataset conversion: one streaming pass per bag, one episode assembled at a time.

Messages are read once, in receive-time order. Each grid-sampled topic keeps a bounded
buffer of the messages some tick will sample (resample.py); nothing is decoded while
reading. When an episode's end marker has passed (plus header_lag in header mode), its ticks
are sampled with numpy and only the sampled messages are decoded, in batches (features.py).

Transitions: frame i = (state at tick i, action at tick i, state at tick i+1). A frame needs
both ticks usable and consecutive, so the last tick of an episode is not a frame of its own
(its state is the previous frame's next.observation.state) and a frame just before a
dropped tick is dropped too: next.observation.state is always exactly one tick later.
An episode with a dropped tick inside is written as several dataset episodes (meta
``segment`` / ``segments``), so no two frames on either side of the hole are ever adjacent.

Episodes come from the /task/episode markers when the bag has them (``episodes: auto``).
A bag without them (a plain ``ros2 bag record`` of a lab demonstration) is one episode from
its first to its last command, labelled ``label``; with ``split_gap`` a pause in the
commands longer than that many seconds starts a new one. Such bags may lack the task
topics: the goal is then the hand's final position (the demonstration went there) and
there are no obstacles; the report says so.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from mberil_ros import __version__
from mberil_ros.data.bagio import Bag, open_bag, sha256_of
from mberil_ros.data.config import DatasetConfig
from mberil_ros.data.episodes import EpisodeTracker, MarkerError, Window
from mberil_ros.data.fastdecode import DecodeError, header_stamp_ns
from mberil_ros.data.features import FeatureDecoder, make_feature
from mberil_ros.data.report import ConversionReport, TopicReport
from mberil_ros.data.resample import OutOfOrder, TopicBuffer
from mberil_ros.data.writer import DatasetWriter, check_output
from mberil_ros.errors import UserError
from mberil_ros.robot_description import RobotDescription
from mberil_ros.sim import spaces

NS = 1_000_000_000
MAINTAIN_NS = NS  # trim buffers / update progress every second of bag time


class BagConverter:
    def __init__(self, bag: Bag, bag_index: int, cfg: DatasetConfig, writer: DatasetWriter,
                 report: ConversionReport, progress: tqdm) -> None:
        self.bag, self.bag_index, self.cfg = bag, bag_index, cfg
        self.writer, self.report, self.progress = writer, report, progress
        self.dt = int(round(NS / cfg.fps))
        self.lag = int(cfg.header_lag * NS) if cfg.timestamps == "header" else 0
        self.roles = cfg.feature_roles
        self.tracker = EpisodeTracker()
        self.closing: list[Window] = []
        self.buffers: dict[str, TopicBuffer] = {}
        self.decoders: dict[str, FeatureDecoder] = {}
        self.push: dict[int, Any] = {}  # connection id -> callable(receive_ns, raw)
        self.conns = []
        marker = cfg.topics["episode"]
        counts: dict[str, int] = {}
        for c in bag.reader.connections:
            counts[c.topic] = counts.get(c.topic, 0) + c.msgcount
        self.by_markers = cfg.episodes == "markers" or (cfg.episodes == "auto"
                                                        and marker.name in counts)
        self.rule = ("markers" if self.by_markers
                     else "split_gap" if cfg.split_gap is not None else "bag")
        report.episode_rules[str(bag.path)] = self.rule
        self._check_arm(counts)
        # without markers the task topics are optional (a lab's plain recording)
        optional = () if self.by_markers else ("goal", "goal_left", "obstacles")
        self.missing = [r for r in self.roles if r in optional and cfg.topics[r].name not in counts]
        for role in self.missing:
            report.filled.append(f"{bag.path.name}: {cfg.topics[role].name} not in the bag: "
                                 + ("goal = the hand's final position" if role != "obstacles"
                                    else "no obstacles"))
        for role in self.roles:
            if role in self.missing:
                continue
            topic = cfg.topics[role]
            conns = bag.connections(topic.name, topic.msgtype)
            decoder = make_feature(role, cfg, bag.deserializer(topic.msgtype), bag.ros1)
            stamp_of = None
            if cfg.timestamps == "header" and decoder.has_header:
                stamp_of = partial(header_stamp_ns, ros1=bag.ros1)
            buffer = TopicBuffer(self.dt, stamp_of)
            self.buffers[role], self.decoders[role] = buffer, decoder
            self.push.update({c.id: buffer.push for c in conns})
            self.conns += conns
        if self.by_markers:
            marker_conns = bag.connections(marker.name, marker.msgtype)
            self.marker_text = bag.deserializer(marker.msgtype)
            self.push.update({c.id: self._on_marker for c in marker_conns})
            self.conns += marker_conns
        else:
            action = cfg.topics[cfg.action_role]
            push_action = self.buffers[cfg.action_role].push

            def on_action(t: int, raw: bytes) -> None:
                push_action(t, raw)
                self._on_action_time(t)

            self.push.update({c.id: on_action for c in bag.connections(action.name,
                                                                        action.msgtype)})
            self.last_action_ns = 0
            self.next_episode = 0

    def _check_arm(self, counts: dict[str, int]) -> None:
        """A one-arm dataset from a bag with a left-hand goal would silently drop an arm."""
        goal_left = self.cfg.topics["goal_left"].name
        if self.cfg.arm != "both" and counts.get(goal_left, 0) > 0:
            raise UserError(f"{self.bag.path}: topic {goal_left} has messages (a both-arms "
                            f"recording) but the dataset's arm is {self.cfg.arm}: convert "
                            "with --arm both")

    # ---- reading ----------------------------------------------------------------------------
    def run(self) -> None:
        due = -(2**63)
        push = self.push
        t = 0
        for conn, t, raw in self.bag.messages(self.conns):
            if t >= due:
                due = self._advance(t)
            try:
                push[conn.id](t, raw)
            except OutOfOrder as exc:
                raise UserError(f"{self.bag.path}: topic {conn.topic}: decreasing timestamps "
                                f"({exc})") from None
        if not self.by_markers and self.tracker.open is not None:
            self._close_window(self.last_action_ns)  # the bag's last command ends it
        self._advance(2**62, final=True)  # end of bag: every closed episode is due
        if self.tracker.open is not None:
            w = self.tracker.open
            self.report.incomplete_episodes.append(f"{self.bag.path.name}#{w.episode}")
        self._report_topics()

    def _on_marker(self, t: int, raw: bytes) -> None:
        name = self.cfg.topics["episode"].name
        try:
            text = self.marker_text(raw).data
            window = self.tracker.apply(t, text)
        except MarkerError as exc:
            raise UserError(f"{self.bag.path}: topic {name} at {t / NS:.3f} s: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - rosbags raises several types for bad bytes
            raise UserError(f"{self.bag.path}: topic {name} at {t / NS:.3f} s: cannot "
                            f"deserialize ({exc})") from None
        if window is not None:
            if window.params.get("arm", self.cfg.arm) != self.cfg.arm:
                raise UserError(f"{self.bag.path}: topic {name}: episode {window.episode} was "
                                f"recorded with arm {window.params['arm']} but the dataset's "
                                f"arm is {self.cfg.arm}: convert with --arm "
                                f"{window.params['arm']}")
            self.closing.append(window)

    def _on_action_time(self, t: int) -> None:
        """Episodes without markers: the first command opens one; with split_gap, a pause
        longer than that closes it at the last command before the pause."""
        gap = self.cfg.split_gap
        if (self.tracker.open is not None and gap is not None
                and t - self.last_action_ns > gap * NS):
            self._close_window(self.last_action_ns)
        if self.tracker.open is None:
            self.tracker.open = Window(
                episode=self.next_episode, start_ns=t, label=self.cfg.label, demonstrator="",
                suite="", seed=None, params={"episode_rule": self.rule})
            self.next_episode += 1
        self.last_action_ns = t

    def _close_window(self, end_ns: int) -> None:
        window, self.tracker.open = self.tracker.open, None
        window.end_ns = end_ns
        self.closing.append(window)

    def _advance(self, t: int, final: bool = False) -> int:
        """Finalize due episodes, bound the buffers; return the next time to come back."""
        while self.closing and self.closing[0].end_ns + self.lag < t:
            self._finalize(self.closing.pop(0))
        horizons = [t - self.lag] + [self._first_tick(w.start_ns) for w in self.closing]
        if self.tracker.open is not None:
            w = self.tracker.open
            if not final and (t - w.start_ns) / NS > self.cfg.max_episode_seconds:
                why = (f"lost end marker on {self.cfg.topics['episode'].name}?"
                       if self.by_markers else "no markers: cut it with --split-gap SEC")
                raise UserError(f"{self.bag.path}: episode {w.episode} is longer than "
                                f"max_episode_seconds={self.cfg.max_episode_seconds} ({why})")
            horizons.append(self._first_tick(w.start_ns))
        horizon = min(horizons)
        for buffer in self.buffers.values():
            buffer.trim(horizon)
        count = sum(b.count for b in self.buffers.values())
        self.progress.update(max(count - self.progress.n, 0))
        due = t + MAINTAIN_NS
        if self.closing:
            due = min(due, self.closing[0].end_ns + self.lag + 1)
        return due

    def _first_tick(self, t: int) -> int:
        return -(-t // self.dt) * self.dt

    # ---- one episode ------------------------------------------------------------------------
    def _finalize(self, w: Window) -> None:
        assert w.end_ns is not None
        name = f"{self.bag.path.name}#{w.episode}"
        if w.label == "expert" and w.success is False:  # never teach a failure as expert
            if self.cfg.failed_expert == "drop":
                self.report.failed_expert[name] = "dropped"
                return
            self.report.failed_expert[name] = "relabelled suboptimal"
            w.label = "suboptimal"
        ticks = np.arange(-(-w.start_ns // self.dt), w.end_ns // self.dt + 1,
                          dtype=np.int64) * self.dt
        self.report.ticks += len(ticks)
        usable = np.ones(len(ticks), dtype=bool)
        sampled: dict[str, np.ndarray] = {}
        for role in self.roles:
            if role in self.missing:
                continue
            topic = self.cfg.topics[role]
            max_age = None if topic.max_age is None else int(topic.max_age * NS)
            idx, valid = self.buffers[role].sample(ticks, max_age)
            self._topic_report(role).dropped_frames += int((~valid).sum())
            usable &= valid
            sampled[role] = idx
        self.report.dropped_frames += int((~usable).sum())
        keep = np.flatnonzero(usable)
        pair = keep[1:] == keep[:-1] + 1  # tick and its successor both usable
        self.report.no_successor += int(len(keep) - pair.sum())
        if not pair.any():
            self.report.empty_episodes.append(name)
            return
        values = {role: self._decode(role, sampled[role][keep]) for role in sampled}
        values.update(self._filled(values["joint_states"]))
        obs_roles = [r for r in self.roles if r != self.cfg.action_role]
        obs = np.concatenate([values[r] for r in obs_roles], axis=1)
        action = values[self.cfg.action_role]
        frames = np.flatnonzero(pair)
        # Trainers take next_obs[k] == obs[k+1] within an episode: where a dropped tick
        # leaves a hole between two frames, the episode is written as separate parts.
        parts = np.split(frames, np.flatnonzero(np.diff(keep[frames]) != 1) + 1)
        if len(parts) > 1:
            self.report.split_episodes[name] = len(parts)
        base = {**w.meta(), "source_bag": self.bag_index, "segments": len(parts),
                "dropped_frames": int(len(ticks) - len(frames)),
                "duration_s": (w.end_ns - w.start_ns) / NS}
        for segment, part in enumerate(parts):
            meta = {**base, "segment": segment}
            for role in obs_roles:
                if role != "joint_states":
                    meta[role] = values[role][part[0]].tolist()  # task params at the start
            self.writer.add_episode(meta, obs[part], action[part], obs[part + 1],
                                    (ticks[keep[part]] - ticks[0]) / NS)
            self.report.episodes += 1
            self.report.frames += len(part)
            self.report.labels[w.label] = self.report.labels.get(w.label, 0) + 1
        self.report.durations.append(base["duration_s"])

    def _filled(self, joint_states: np.ndarray) -> dict[str, np.ndarray]:
        """Values of the task topics the bag lacks (no markers): each goal is the final
        position of its hand, the obstacle slots are empty."""
        out = {}
        n = len(joint_states)
        final = dict(zip(self.cfg.joints, joint_states[-1, :len(self.cfg.joints)], strict=True))
        hands = spaces.observation_layout(self.cfg.arm).hands
        for role in self.missing:
            if role == "obstacles":
                out[role] = np.zeros((n, self.cfg.max_obstacles * spaces.OBSTACLE_WIDTH))
            else:
                link = spaces.HAND_LINKS[hands[self.cfg.goal_roles.index(role)]]
                hand = _robot().forward_kinematics(final)[link][:3, 3]
                out[role] = np.repeat(hand[None], n, axis=0)
        return out

    def _decode(self, role: str, idx: np.ndarray) -> np.ndarray:
        """Decode each sampled message once; NaN/inf anywhere is an error."""
        buffer, decoder = self.buffers[role], self.decoders[role]
        topic = self.cfg.topics[role].name
        unique, inverse = np.unique(idx, return_inverse=True)
        try:
            rows = decoder.decode([buffer.raws[i] for i in unique])
        except DecodeError as exc:
            stamp = buffer.stamps[unique[exc.index]]
            raise UserError(f"{self.bag.path}: topic {topic} at {stamp / NS:.3f} s: "
                            f"{exc}") from None
        bad = ~np.isfinite(rows)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            stamp = buffer.stamps[unique[row]]
            raise UserError(f"{self.bag.path}: topic {topic} at {stamp / NS:.3f} s: "
                            f"{decoder.fields[col]} is {rows[row, col]}")
        return rows[inverse.reshape(-1)]

    def _topic_report(self, role: str) -> TopicReport:
        key = f"{self.bag.path.name}: {self.cfg.topics[role].name}"
        return self.report.topics.setdefault(key, TopicReport(self.cfg.topics[role].name))

    def _report_topics(self) -> None:
        for role, buffer in self.buffers.items():
            entry = self._topic_report(role)
            entry.messages, entry.rate_hz = buffer.count, round(buffer.rate_hz, 2)
        self.report.messages += sum(b.count for b in self.buffers.values())


@cache
def _robot() -> RobotDescription:
    return RobotDescription.from_xacro()


def convert(bags: list[str | Path], out: str | Path, cfg: DatasetConfig, *,
            overwrite: bool = False, progress: bool | None = None) -> ConversionReport:
    """Convert ``bags`` (in order; episodes are numbered across them) into the dataset ``out``."""
    started = time.perf_counter()
    paths = [Path(b) for b in bags]
    if not paths:
        raise UserError("no bags given")
    for p in paths:
        if not p.exists():
            raise UserError(f"{p}: no such bag")
    if len({p.resolve() for p in paths}) != len(paths):
        raise UserError("the same bag is given twice")
    out = Path(out)
    check_output(out, overwrite)
    report = ConversionReport(bags=[str(p) for p in paths])
    writer = DatasetWriter(out, overwrite=overwrite, vectors=cfg.vectors(),
                           task=cfg.task_text())
    pool = ThreadPoolExecutor(max_workers=1)  # hashing overlaps with conversion
    try:
        hashes = [pool.submit(sha256_of, p) for p in paths]
        sources = []
        # disable=None: a bar only on a terminal
        disable = None if progress is None else not progress
        with tqdm(total=0, unit="msg", disable=disable, desc="convert") as bar:
            for i, path in enumerate(paths):
                # an interrupted recording is read back into a temporary copy inside the
                # dataset's temporary folder (the bag itself is never written)
                with open_bag(path, scratch=writer.tmp) as bag:
                    if bag.recovery is not None:
                        report.recovered[str(path)] = bag.recovery.summary()
                    converter = BagConverter(bag, i, cfg, writer, report, bar)
                    bar.total = (bar.total or 0) + sum(c.msgcount for c in converter.conns)
                    converter.run()
                    sources.append({"path": str(path), "storage": bag.kind,
                                    "messages": sum(c.msgcount for c in converter.conns),
                                    "recovered": bag.recovery is not None})
        if not writer.episodes:
            dropped = f"; failed expert episodes dropped: {len(report.failed_expert)}" if \
                report.failed_expert else ""
            raise UserError(f"{', '.join(report.bags)}: no complete episode with at least one "
                            f"frame (markers on {cfg.topics['episode'].name}{dropped})")
        for source, digest in zip(sources, hashes, strict=True):
            source["sha256"] = digest.result()
        report.seconds = time.perf_counter() - started
        writer.finish({
            "fps": cfg.fps,
            "robot_type": "nextage",
            "arm": cfg.arm,
            "joints": cfg.joints,
            "timestamps": cfg.timestamps,
            "sources": sources,
            "converter": {"name": "mberil convert", "version": __version__},
            "config": cfg.to_dict(),
            "report": report.to_dict(),
        })
    except BaseException:
        writer.abort()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return report
