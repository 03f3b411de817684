"""Capped exponential backoff with jitter: the one delay rule of retries, probes and replays."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int, initial: float, maximum: float, *, rand: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    The ceiling doubles from ``initial`` at each attempt up to ``maximum``; the delay is drawn
    between half the ceiling and the ceiling, so that many clients do not retry in step.
    Pure apart from the random draw (pass ``rand`` for a reproducible one).
    """
    ceiling = min(maximum, initial * (2 ** max(0, attempt - 1)))
    draw = (rand or random).uniform(0, ceiling / 2)
    return float(ceiling / 2 + draw)
