"""Episode markers: std_msgs/String on /task/episode whose data is JSON.

    {"event": "start", "episode": 3, "label": "expert", "demonstrator": "scripted",
     "suite": "train", "seed": 17, ...task params...}
    {"event": "end", "episode": 3, "success": true}

Frames outside start..end belong to no episode. A start while an episode is open, an end with
no open episode or another episode number, bad JSON or a bad label are errors. An episode
still open when the bag ends (recording stopped mid-episode) is left out and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

LABELS = ("expert", "suboptimal")
_START_KEYS = {"event", "episode", "label", "demonstrator", "suite", "seed"}


class MarkerError(ValueError):
    pass


@dataclass
class Window:
    """One episode as the markers describe it (receive times, nanoseconds)."""

    episode: int
    start_ns: int
    label: str
    demonstrator: str
    suite: str
    seed: int | None
    params: dict[str, Any] = field(default_factory=dict)  # other keys of the start marker
    end_ns: int | None = None
    success: bool | None = None

    def meta(self) -> dict[str, Any]:
        return {
            "source_episode": self.episode,
            "label": self.label,
            "demonstrator": self.demonstrator,
            "suite": self.suite,
            "seed": self.seed,
            "success": self.success,
            "start_time_ns": self.start_ns,
            "end_time_ns": self.end_ns,
            "task_params": json.dumps(self.params, sort_keys=True),
        }


def parse_marker(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MarkerError(f"data is not JSON ({exc.msg}): {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise MarkerError(f"data must be a JSON object, got {text[:80]!r}")
    if data.get("event") not in ("start", "end"):
        raise MarkerError(f"event must be 'start' or 'end', got {data.get('event')!r}")
    if not isinstance(data.get("episode"), int) or isinstance(data.get("episode"), bool):
        raise MarkerError(f"episode must be an integer, got {data.get('episode')!r}")
    return data


class EpisodeTracker:
    """Applies markers in order; hands out closed windows."""

    def __init__(self) -> None:
        self.open: Window | None = None

    def apply(self, t_ns: int, text: str) -> Window | None:
        """Apply one marker; return the window it closes, if any."""
        data = parse_marker(text)
        number = data["episode"]
        if data["event"] == "start":
            if self.open is not None:
                raise MarkerError(f"episode {number} starts while episode "
                                  f"{self.open.episode} is still open")
            label = data.get("label")
            if label not in LABELS:
                raise MarkerError(f"episode {number}: label must be one of {LABELS}, "
                                  f"got {label!r}")
            seed = data.get("seed")
            if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                raise MarkerError(f"episode {number}: seed must be an integer, got {seed!r}")
            self.open = Window(
                episode=number, start_ns=t_ns, label=label,
                demonstrator=str(data.get("demonstrator", "")), suite=str(data.get("suite", "")),
                seed=seed, params={k: v for k, v in data.items() if k not in _START_KEYS},
            )
            return None
        if self.open is None:
            raise MarkerError(f"end of episode {number} without a start")
        if self.open.episode != number:
            raise MarkerError(f"end of episode {number} while episode {self.open.episode} "
                              "is open")
        success = data.get("success")
        if success is not None and not isinstance(success, bool):
            raise MarkerError(f"episode {number}: success must be true/false, got {success!r}")
        window, self.open = self.open, None
        window.end_ns, window.success = t_ns, success
        return window
