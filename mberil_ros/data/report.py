"""The conversion report: what was read, what was dropped and why, what was written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TopicReport:
    topic: str
    messages: int = 0
    rate_hz: float = 0.0
    dropped_frames: int = 0  # ticks where this topic had no message or only a stale one


@dataclass
class ConversionReport:
    bags: list[str] = field(default_factory=list)
    topics: dict[str, TopicReport] = field(default_factory=dict)  # by "bag: topic"
    ticks: int = 0  # grid ticks inside episodes
    dropped_frames: int = 0  # ticks with at least one topic missing/stale
    no_successor: int = 0  # valid ticks whose next tick is dropped (incl. each episode's last)
    frames: int = 0
    episodes: int = 0  # dataset episodes (a split source episode counts once per part)
    labels: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    incomplete_episodes: list[str] = field(default_factory=list)  # no end marker
    # bags read back from an interrupted recording -> what was kept and cut
    recovered: dict[str, str] = field(default_factory=dict)
    empty_episodes: list[str] = field(default_factory=list)  # fewer than 2 usable ticks
    # episodes cut at dropped ticks into this many dataset episodes
    split_episodes: dict[str, int] = field(default_factory=dict)
    episode_rules: dict[str, str] = field(default_factory=dict)  # bag -> markers|bag|split_gap
    filled: list[str] = field(default_factory=list)  # task topics a marker-less bag lacks
    # expert episodes whose end marker says success: false -> what was done with them
    failed_expert: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    messages: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "bags": self.bags,
            "topics": {k: vars(v) for k, v in self.topics.items()},
            "ticks": self.ticks,
            "dropped_frames": self.dropped_frames,
            "no_successor": self.no_successor,
            "frames": self.frames,
            "episodes": self.episodes,
            "labels": self.labels,
            "episode_seconds_total": round(sum(self.durations), 3),
            "incomplete_episodes": self.incomplete_episodes,
            "recovered": self.recovered,
            "empty_episodes": self.empty_episodes,
            "split_episodes": len(self.split_episodes),
            "split_episode_parts": self.split_episodes,
            "episode_rules": self.episode_rules,
            "filled": self.filled,
            "failed_expert": self.failed_expert,
            "messages": self.messages,
            "conversion_seconds": round(self.seconds, 3),
        }

    def format(self) -> str:
        lines = [f"converted {len(self.bags)} bag(s), {self.messages} messages in "
                 f"{self.seconds:.1f} s"]
        lines.append(f"  {'topic':<58} {'msgs':>9} {'rate Hz':>8} {'dropped':>8}")
        for key, t in self.topics.items():
            lines.append(f"  {key:<58} {t.messages:>9} {t.rate_hz:>8.1f} {t.dropped_frames:>8}")
        rules = {"markers": "/task/episode markers", "bag": "one episode per bag (no markers)",
                 "split_gap": "no markers: split at command pauses (--split-gap)"}
        for rule in sorted(set(self.episode_rules.values())):
            bags = [b for b, r in self.episode_rules.items() if r == rule]
            lines.append(f"  episodes from {rules[rule]}: {len(bags)} bag(s)")
        lines += [f"  {f}" for f in self.filled]
        lines.append(f"  grid ticks in episodes: {self.ticks}; dropped (missing/stale topic): "
                     f"{self.dropped_frames}; without a next frame: {self.no_successor} "
                     "(each episode's last frame, and frames before a dropped one)")
        labels = ", ".join(f"{k}: {v}" for k, v in sorted(self.labels.items())) or "none"
        lines.append(f"  episodes: {self.episodes} ({labels}); frames: {self.frames}")
        if self.durations:
            d = self.durations
            lines.append(f"  episode duration s: total {sum(d):.1f}, mean {sum(d) / len(d):.2f}, "
                         f"min {min(d):.2f}, max {max(d):.2f}")
        for bag, what in self.recovered.items():
            lines.append(f"  recovered {bag}: {what}")
        if self.incomplete_episodes:
            lines.append(f"  left out, no end marker: {', '.join(self.incomplete_episodes)}")
        if self.split_episodes:
            parts = ", ".join(f"{k} ({v} parts)" for k, v in self.split_episodes.items())
            lines.append(f"  split at dropped ticks: {len(self.split_episodes)} episode(s): "
                         f"{parts}")
        if self.failed_expert:
            what = ", ".join(f"{k} ({v})" for k, v in self.failed_expert.items())
            lines.append(f"  expert episodes that failed (end marker success: false): {what}")
        if self.empty_episodes:
            lines.append(f"  left out, < 2 usable frames: {', '.join(self.empty_episodes)}")
        return "\n".join(lines)
