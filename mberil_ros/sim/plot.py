"""Picture of one episode: hand path in top (x-y) and side (x-z) views with obstacles and
targets, in the WAIST frame. Uses matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mberil_ros.sim.model import TABLE_TOP_Z
from mberil_ros.sim.scene import Obstacle


def plot_episode(path: str | Path, hand_paths: Mapping[str, np.ndarray],
                 targets: Mapping[str, Sequence[float]], obstacles: Sequence[Obstacle],
                 title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    path = Path(path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (i, j), label in zip(axes, ((0, 1), (0, 2)), ("top view", "side view"), strict=True):
        for ob in obstacles:
            c, h = np.asarray(ob.position), ob.half_extents
            if ob.type == "sphere":
                ax.add_patch(Circle((c[i], c[j]), h[0], color="tab:red", alpha=0.5))
            else:
                ax.add_patch(Rectangle((c[i] - h[i], c[j] - h[j]), 2 * h[i], 2 * h[j],
                                       color="tab:red", alpha=0.5))
        for side, pts in hand_paths.items():
            pts = np.asarray(pts)
            ax.plot(pts[:, i], pts[:, j], "-", label=f"{side} hand")
            ax.plot(pts[0, i], pts[0, j], "o", color="k", ms=4)
        for side, t in targets.items():
            ax.plot(t[i], t[j], "*", ms=14, color="tab:green", label=f"{side} target")
        if j == 2:
            ax.axhline(TABLE_TOP_Z, color="saddlebrown", lw=2, label="table top")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)" if j == 1 else "z (m)")
        ax.set_title(label)
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(alpha=0.3)
    axes[1].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
