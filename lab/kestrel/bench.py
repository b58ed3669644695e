"""`workbook bench kestrel [--quick] [--out DIR]`: our server against Redis, same harness.

Two workloads from Kestrel's README, each with fsync `always` and `never`:

- put-many: 100,000 puts of 1 KiB from 100 clients (Kestrel, 2010 laptop: about 16,000/s);
- flood: 1 producer and 1 consumer moving 10,000 items of 1 KiB (Kestrel: about 6,400/s).

Redis runs the same workloads with LPUSH/RPOP (`appendfsync always` or no persistence), driven by
the same asyncio clients speaking raw protocol, so the client cost is the same on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lab.kestrel.testing import kestrel_process
from lab.process import ManagedProcess, free_port

PAYLOAD = b"x" * 1024


class KestrelClient:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def put(self, queue: bytes, data: bytes) -> None:
        self.writer.write(b"set %s 0 0 %d\r\n%s\r\n" % (queue, len(data), data))
        assert await self.reader.readline() == b"STORED\r\n"

    async def take(self, queue: bytes) -> bytes | None:
        self.writer.write(b"get %s/t=1000\r\n" % queue)
        line = await self.reader.readline()
        if line == b"END\r\n":
            return None
        data = await self.reader.readexactly(int(line.split()[3]) + 2)
        await self.reader.readline()
        return data[:-2]


class RedisClient:
    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer

    async def put(self, queue: bytes, data: bytes) -> None:
        self.writer.write(b"*3\r\n$5\r\nLPUSH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n"
                          % (len(queue), queue, len(data), data))
        assert (await self.reader.readline()).startswith(b":")

    async def take(self, queue: bytes) -> bytes | None:
        self.writer.write(b"*3\r\n$5\r\nBRPOP\r\n$%d\r\n%s\r\n$1\r\n1\r\n" % (len(queue), queue))
        line = await self.reader.readline()
        if line.startswith(b"*-1"):
            return None
        await self.reader.readline()  # the key's header
        await self.reader.readline()  # the key
        size = int((await self.reader.readline())[1:])
        return (await self.reader.readexactly(size + 2))[:-2]


async def connect(kind, port: int):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return kind(reader, writer)


async def put_many(kind, port: int, total: int, clients: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    conns = [await connect(kind, port) for _ in range(clients)]

    async def run(conn, count):
        for _ in range(count):
            started = time.perf_counter()
            await conn.put(b"putmany", PAYLOAD)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(run(conn, total // clients) for conn in conns))
    elapsed = time.perf_counter() - started
    for conn in conns:
        conn.writer.close()
    return elapsed, latencies


async def flood(kind, port: int, total: int) -> tuple[float, list[float]]:
    producer, consumer = await connect(kind, port), await connect(kind, port)
    latencies: list[float] = []

    async def produce():
        for _ in range(total):
            started = time.perf_counter()
            await producer.put(b"flood", PAYLOAD)
            latencies.append(time.perf_counter() - started)

    async def consume():
        got = 0
        while got < total:
            if await consumer.take(b"flood") is not None:
                got += 1

    started = time.perf_counter()
    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    for conn in (producer, consumer):
        conn.writer.close()
    return elapsed, latencies


def start_server(server: str, fsync: str, data_dir: Path) -> ManagedProcess:
    if server == "kestrel":
        return kestrel_process(data_dir, "--fsync", fsync, "--log-level", "WARNING").start()
    port = free_port()
    persistence = (["--appendonly", "yes", "--appendfsync", "always"] if fsync == "always"
                   else ["--appendonly", "no"])
    return ManagedProcess("redis", [shutil.which("redis-server") or "redis-server", "--port",
                                    str(port), "--save", "", "--dir", str(data_dir),
                                    *persistence], port=port).start()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench kestrel")
    parser.add_argument("--quick", action="store_true", help="a tenth of the items")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for kestrel.json")
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    rows = []
    for workload in ("put-many", "flood"):
        for fsync in ("always", "never"):
            by_server = {}
            for server in ("kestrel", "redis"):
                with tempfile.TemporaryDirectory() as folder:
                    process = start_server(server, fsync, Path(folder))
                    try:
                        kind = KestrelClient if server == "kestrel" else RedisClient
                        if workload == "put-many":
                            total = 100_000 // scale
                            elapsed, latencies = asyncio.run(put_many(kind, process.port, total, 100))
                        else:
                            total = 10_000 // scale
                            elapsed, latencies = asyncio.run(flood(kind, process.port, total))
                    finally:
                        process.stop()
                        process.remove_log()
                row = {"server": server, "workload": workload, "fsync": fsync,
                       "items_per_s": round(total / elapsed), "p50_ms": round(
                           statistics.median(latencies) * 1000, 3),
                       "p99_ms": round(percentile(latencies, 0.99), 3)}
                rows.append(row)
                by_server[server] = row
                print(f"{workload:9} fsync={fsync:6} {server:8} {row['items_per_s']:>8} items/s"
                      f"  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms")
            ratio = by_server["kestrel"]["items_per_s"] / by_server["redis"]["items_per_s"]
            print(f"{'':9} {'':13} kestrel/redis = {ratio:.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kestrel.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {args.out / 'kestrel.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
