"""`workbook bench kestrel-churn [--seconds S] [--out DIR]`: does the queue server stall its clients?

One client churns 256 KiB items through a queue (set, then get) with `--fsync always`, so the
journal keeps growing and being compacted; another sends `version` every 2 ms and times each
answer. The same prober runs first against the idle server, so the lines printed side by side
say what the churn costs everyone else. The churn runs twice: through an empty queue (each
compaction writes an empty file) and past a backlog of 16 items (each compaction writes 4 MiB).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

from lab.bench.figures import percentile, write_results
from lab.runtime.kestrel_server import kestrel_process
from lab.testing.kestrel import RawClient

ITEM = b"c" * (256 * 1024)
BACKLOG = 16  # items left in the queue by the second churn: 4 MiB for every compaction to write
PROBE_EVERY = 0.002  # seconds between two `version` requests


def probe(port: int, seconds: float) -> list[float]:
    """Latencies (ms) of `version`, one every PROBE_EVERY, for `seconds`."""
    latencies = []
    with RawClient(port) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.request(b"version\r\n")
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(PROBE_EVERY)
    return latencies


def churn(port: int, queue: str, backlog: int, churning, stop, moved) -> None:
    """In a process of its own, so that it never holds the prober's interpreter lock, and at the
    lowest priority, so that on a small machine its own work never delays the prober or the
    server: what the prober measures is the server."""
    os.nice(19)
    with RawClient(port, timeout=60) as client:
        for _ in range(backlog):
            assert client.set(queue, ITEM) == b"STORED\r\n"
        while not stop.is_set():
            assert client.set(queue, ITEM) == b"STORED\r\n"
            assert client.get(queue) == ITEM
            with moved.get_lock():
                moved.value += 1
            churning.set()  # the backlog is in and an item has gone round: time the prober now


def summary(name: str, latencies: list[float]) -> dict:
    return {"while": name, "requests": len(latencies), "p50_ms": round(percentile(latencies, 0.5), 3),
            "p999_ms": round(percentile(latencies, 0.999), 3), "max_ms": round(max(latencies), 3)}


def line(row: dict) -> str:
    return (f"version {row['while']:15} {row['requests']:6} requests  p50 {row['p50_ms']:7.3f} ms"
            f"  p99.9 {row['p999_ms']:7.3f} ms  max {row['max_ms']:7.3f} ms")


def probe_during_churn(port: int, seconds: float, queue: str, backlog: int) -> tuple[list[float], int]:
    """The prober's latencies while another process churns; and how many items it moved."""
    context = multiprocessing.get_context("fork")
    churning, stop, moved = context.Event(), context.Event(), context.Value("i", 0)
    churner = context.Process(target=churn, args=(port, queue, backlog, churning, stop, moved))
    churner.start()
    try:
        if not churning.wait(60):
            raise RuntimeError("the churning client never got going")
        latencies = probe(port, seconds)
    finally:
        stop.set()
        churner.join(timeout=60)
    if churner.exitcode != 0:
        raise RuntimeError(f"the churning client failed (exit {churner.exitcode})")
    return latencies, moved.value


def run(seconds: float) -> tuple[list[dict], dict[str, int]]:
    with tempfile.TemporaryDirectory() as folder, \
            kestrel_process(Path(folder), "--fsync", "always", "--log-level", "WARNING") as server:
        rows = [summary("idle", probe(server.port, seconds))]
        moved = {}
        for name, queue, backlog in (("churn", "churn", 0), ("churn+16", "backlog", BACKLOG)):
            latencies, moved[name] = probe_during_churn(server.port, seconds, queue, backlog)
            rows.append(summary(f"under {name}", latencies))
    return rows, moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench kestrel-churn")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="folder for kestrel-churn.json and kestrel-churn.txt, the printed lines "
                        "(default bench-results)")
    args = parser.parse_args(argv)
    rows, moved = run(args.seconds)
    idle = rows[0]
    printed = [line(row) for row in rows] + [
        f"{name} moved {count} items of 256 KiB; p99.9 {row['while']} / idle: "
        f"{row['p999_ms'] / idle['p999_ms']:.1f}x"
        for row, (name, count) in zip(rows[1:], moved.items(), strict=True)]
    print("\n".join(printed))
    write_results(args.out, "kestrel-churn", {"rows": rows, "moved": moved}, "\n".join(printed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
