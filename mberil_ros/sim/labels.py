"""Demonstrator names, importable without MuJoCo (the trainer reads them from datasets)."""

EXPERT = "expert"
SUBOPTIMAL_DEMONSTRATORS: tuple[str, ...] = ("noisy", "detour", "greedy")
DEMONSTRATORS: tuple[str, ...] = (EXPERT, *SUBOPTIMAL_DEMONSTRATORS)
