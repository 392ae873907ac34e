"""Seeds derived from tuples of integers, so that any (seed, phase, step, process, ...) key
gives its own reproducible random stream."""

from __future__ import annotations

import numpy as np
import torch


def seed_from(*key: int) -> int:
    """A 32-bit seed mixed from integers by numpy's SeedSequence."""
    return int(np.random.SeedSequence(list(key)).generate_state(1)[0])


def seeded_generator(*key: int) -> torch.Generator:
    """A CPU torch generator seeded by :func:`seed_from` (draw on the CPU, then move: the same
    numbers on any device)."""
    return torch.Generator().manual_seed(seed_from(*key))
