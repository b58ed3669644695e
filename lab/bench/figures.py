"""The figures the benchmarks and the drill share."""

from __future__ import annotations


def percentile(values: list[float], share: float) -> float | None:
    """The value below which `share` of `values` fall (nearest rank), or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
