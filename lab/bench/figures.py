"""The figures the benchmarks and the drill share, and how a benchmark keeps its results."""

from __future__ import annotations

import json
from pathlib import Path


def write_results(out: Path, name: str, data, table: str) -> None:
    """OUT/NAME.json (the figures) and OUT/NAME.txt (the table as printed), and say so."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / f"{name}.txt").write_text(table + "\n")
    print(f"wrote {out / f'{name}.json'} and {out / f'{name}.txt'}")


def percentile(values: list[float], share: float) -> float | None:
    """The value below which `share` of `values` fall (nearest rank), or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
