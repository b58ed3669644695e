"""The tables `workbook bench db-queue` prints and writes: jobs/s, duplicates, speed-up per worker."""

from __future__ import annotations

from datetime import date
from pathlib import Path


def speed_ups(rows: list[dict]) -> list[str]:
    """Each row's jobs/s over the same backend and strategy's 1-worker jobs/s."""
    single = {
        (row["backend"], row["strategy"]): row["jobs_per_s"] for row in rows if row["workers"] == 1
    }
    figures = []
    for row in rows:
        base = single.get((row["backend"], row["strategy"]))
        figures.append(f"{row['jobs_per_s'] / base:.2f}x" if base else "-")
    return figures


HEADERS = ("backend", "strategy", "workers", "jobs/s", "duplicates", "lost", "vs 1 worker")


def table_cells(rows: list[dict]) -> list[tuple[str, ...]]:
    return [
        (row["backend"], row["strategy"], str(row["workers"]), f"{row['jobs_per_s']:.1f}",
         str(row["duplicates"]), str(row["lost"]), speed_up)
        for row, speed_up in zip(rows, speed_ups(rows), strict=False)
    ]


def text_table(rows: list[dict]) -> str:
    cells = [HEADERS, *table_cells(rows)]
    widths = [max(len(line[column]) for line in cells) for column in range(len(HEADERS))]
    lines = []
    for line in cells:
        left = [value.ljust(width) for value, width in zip(line[:2], widths[:2], strict=False)]
        right = [value.rjust(width) for value, width in zip(line[2:], widths[2:], strict=False)]
        lines.append("  ".join(left + right))
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---|--:|--:|--:|--:|--:|"]
    lines += ["| " + " | ".join(line) + " |" for line in table_cells(rows)]
    return "\n".join(lines)


def one_to_four(rows: list[dict], backend: str, strategy: str) -> float | None:
    by_workers = {row["workers"]: row["jobs_per_s"] for row in rows
                  if (row["backend"], row["strategy"]) == (backend, strategy)}
    if not by_workers.get(1) or 4 not in by_workers:
        return None
    return by_workers[4] / by_workers[1]


def postgresql_verdict(rows: list[dict]) -> str | None:
    """The figure the chapter relies on: skip-locked scales on PostgreSQL, locked does not."""
    skip_locked = one_to_four(rows, "postgresql", "skip-locked")
    locked = one_to_four(rows, "postgresql", "locked")
    if skip_locked is None or locked is None:
        return None
    outcome = "as expected" if skip_locked >= 2.5 and locked < 1.5 else "NOT as expected"
    return (f"PostgreSQL, 1 -> 4 workers: skip-locked {skip_locked:.2f}x (expected at least 2.5x),"
            f" locked {locked:.2f}x (expected under 1.5x): {outcome}")


def lock_ceilings(held_ms: dict[str, float], latency_ms: int) -> list[str]:
    """Where `locked-claim` stops growing: one claim at a time, each holding the lock `held` ms, can
    never pass 1000 / held jobs/s; a job worker spends about latency + held ms per job, so about
    (latency + held) / held job workers fill the lock."""
    return [
        f"{backend}: the claim lock is held {held:.2f} ms per claim, so locked-claim cannot pass"
        f" {1000 / held:.0f} jobs/s, about {(latency_ms + held) / held:.0f} job workers"
        f" at a {latency_ms} ms Twitter"
        for backend, held in held_ms.items() if held > 0
    ]


def write_markdown(path: Path, rows: list[dict], settings: str, skipped: dict[str, str],
                   ceilings: list[str] = ()) -> None:
    lines = [
        "# The jobs table as a queue: workers against claim strategies",
        "",
        # Chapter 02 includes everything between the markers (comments: invisible on the page).
        "<!-- --8<-- [start:results] -->",
        f"Measured {date.today().isoformat()} with `workbook bench db-queue`: {settings}.",
        "",
    ]
    if skipped:
        lines += [f"Skipped: {', '.join(skipped)} (no server answered).", ""]
    lines += [markdown_table(rows), ""]
    verdict = postgresql_verdict(rows)
    if verdict:
        lines += [verdict + ".", ""]
    lines += [f"- {line}." for line in ceilings] + ([""] if ceilings else [])
    lines += ["<!-- --8<-- [end:results] -->", ""]
    path.write_text("\n".join(lines))


