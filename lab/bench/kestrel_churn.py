"""`workbook bench kestrel-churn [--seconds S] [--out DIR]`: does the queue server stall its clients?

One client churns 256 KiB items through a queue (set, then get) with `--fsync always`, so the
journal keeps growing and being compacted; another sends `version` every 2 ms and times each
answer. The same prober runs first against the idle server, so the two lines printed side by
side say what the churn costs everyone else.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from pathlib import Path

from lab.bench.figures import percentile
from lab.runtime.kestrel_server import kestrel_process
from lab.testing.kestrel import RawClient

ITEM = b"c" * (256 * 1024)
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


def churn(port: int, stop, moved) -> None:
    """In a process of its own, so that it never holds the prober's interpreter lock."""
    with RawClient(port, timeout=60) as client:
        while not stop.is_set():
            assert client.set("churn", ITEM) == b"STORED\r\n"
            assert client.get("churn") == ITEM
            with moved.get_lock():
                moved.value += 1


def summary(name: str, latencies: list[float]) -> dict:
    return {"while": name, "requests": len(latencies), "p50_ms": round(percentile(latencies, 0.5), 3),
            "p999_ms": round(percentile(latencies, 0.999), 3), "max_ms": round(max(latencies), 3)}


def line(row: dict) -> str:
    return (f"version {row['while']:12} {row['requests']:6} requests  p50 {row['p50_ms']:7.3f} ms"
            f"  p99.9 {row['p999_ms']:7.3f} ms  max {row['max_ms']:7.3f} ms")


def run(seconds: float) -> tuple[list[dict], int]:
    with tempfile.TemporaryDirectory() as folder, \
            kestrel_process(Path(folder), "--fsync", "always", "--log-level", "WARNING") as server:
        idle = probe(server.port, seconds)
        context = multiprocessing.get_context("fork")
        stop, moved = context.Event(), context.Value("i", 0)
        churner = context.Process(target=churn, args=(server.port, stop, moved))
        churner.start()
        try:
            busy = probe(server.port, seconds)
        finally:
            stop.set()
            churner.join(timeout=60)
        if churner.exitcode != 0:
            raise RuntimeError(f"the churning client failed (exit {churner.exitcode})")
    return [summary("idle", idle), summary("under churn", busy)], moved.value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench kestrel-churn")
    parser.add_argument("--seconds", type=float, default=20.0, help="per phase (default %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for kestrel-churn.json")
    args = parser.parse_args(argv)
    rows, moved = run(args.seconds)
    for row in rows:
        print(line(row))
    idle, busy = rows
    print(f"churn moved {moved} items of 256 KiB; p99.9 under churn / idle: "
          f"{busy['p999_ms'] / idle['p999_ms']:.1f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kestrel-churn.json").write_text(json.dumps({"rows": rows, "moved": moved}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
