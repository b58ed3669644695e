"""`workbook bench kestrel [--quick] [--out DIR]`: our server against Redis, same harness.

Two workloads from Kestrel's README, each with fsync `always` and `never`:

- put-many: 100,000 puts of 1 KiB from 100 clients (Kestrel, 2010 laptop: about 16,000/s);
- flood: 1 producer and 1 consumer moving 10,000 items of 1 KiB (Kestrel: about 6,400/s).

Redis runs the same workloads with LPUSH/BRPOP (`appendfsync always`, or no persistence), driven
by the same clients: bare asyncio Protocols with one request in flight each (no pipelining), as in
Kestrel's own put-many, on uvloop where it is installed, so the client costs the same on both sides
and as little as it can: on a 2-core machine the clients share the CPU with the server. Our server
runs a second time on asyncio's own event loop, to show what uvloop is worth. Every run checks
that every item arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import tempfile
import time
from pathlib import Path

from lab.bench.figures import percentile, write_results
from lab.kestrel.cli import event_loop_runner
from lab.runtime.kestrel_server import kestrel_process
from lab.runtime.process import ManagedProcess, free_port
from lab.runtime.redis_server import redis_server_binary

PAYLOAD = b"x" * 1024
# Our server runs twice: on the event loop it picks (uvloop where it is installed) and on
# asyncio's own, so that each line shows what the faster loop is worth, measured in the same run.
KESTREL_EVENT_LOOPS = {"kestrel": "auto", "kestrel-asyncio": "asyncio"}
SERVERS = ("kestrel", "kestrel-asyncio", "redis")
EVENT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
ROUNDS = 5  # per workload and server: enough for a median ratio that holds from one run to the next


def kestrel_reply_length(buffer: bytearray) -> int:
    """Length of the whole memcache reply at the start of `buffer`; 0 while it is incomplete."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return 0
    if buffer.startswith(b"VALUE "):  # VALUE <key> 0 <n>\r\n<data>\r\nEND\r\n
        size = end + 2 + int(buffer[:end].split()[3]) + 2 + len(b"END\r\n")
    elif buffer.startswith(b"STAT "):
        stats_end = buffer.find(b"\r\nEND\r\n")
        size = 0 if stats_end < 0 else stats_end + 7
    else:
        size = end + 2
    return size if len(buffer) >= size else 0


def redis_reply_length(buffer: bytearray) -> int:
    """Length of the whole RESP reply at the start of `buffer` (a line, or an array of bulk
    strings); 0 while it is incomplete."""
    end = buffer.find(b"\r\n")
    if end < 0:
        return 0
    if not buffer.startswith(b"*") or buffer.startswith(b"*-1"):
        return end + 2
    size = end + 2
    for _ in range(int(buffer[1:end])):
        end = buffer.find(b"\r\n", size)
        if end < 0:
            return 0
        size = end + 2 + int(buffer[size + 1:end]) + 2
    return size if len(buffer) >= size else 0


class Connection(asyncio.Protocol):
    """One client connection with one request in flight: send it, wait for its whole reply."""

    def __init__(self, reply_length):
        self.reply_length = reply_length
        self.buffer = bytearray()
        self.reply: asyncio.Future | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        size = self.reply_length(self.buffer)
        if size:
            reply = bytes(self.buffer[:size])
            del self.buffer[:size]
            self.reply.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.set_exception(ConnectionError("the server closed the connection"))

    async def request(self, data: bytes) -> bytes:
        self.reply = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.reply

    def close(self) -> None:
        self.transport.close()


class KestrelClient:
    def __init__(self, connection: Connection):
        self.connection = connection

    async def put(self, queue: bytes, data: bytes) -> None:
        reply = await self.connection.request(b"set %s 0 0 %d\r\n%s\r\n" % (queue, len(data), data))
        assert reply == b"STORED\r\n", reply

    async def take(self, queue: bytes) -> bytes | None:
        reply = await self.connection.request(b"get %s/t=1000\r\n" % queue)
        if reply == b"END\r\n":
            return None
        return reply[reply.index(b"\r\n") + 2:-len(b"\r\nEND\r\n")]

    async def length(self, queue: bytes) -> int:
        reply = await self.connection.request(b"stats\r\n")
        key = b"STAT queue_%s_items " % queue
        line = next(line for line in reply.split(b"\r\n") if line.startswith(key))
        return int(line[len(key):])


class RedisClient:
    def __init__(self, connection: Connection):
        self.connection = connection

    @staticmethod
    def command(*words: bytes) -> bytes:
        return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)

    async def put(self, queue: bytes, data: bytes) -> None:
        reply = await self.connection.request(self.command(b"LPUSH", queue, data))
        assert reply.startswith(b":"), reply

    async def take(self, queue: bytes) -> bytes | None:
        reply = await self.connection.request(self.command(b"BRPOP", queue, b"1"))
        if reply.startswith(b"*-1"):
            return None
        return reply[reply.rindex(b"\r\n", 0, len(reply) - 2) + 2:-2]  # the last bulk string

    async def length(self, queue: bytes) -> int:
        return int((await self.connection.request(self.command(b"LLEN", queue)))[1:])


CLIENTS = {"kestrel": (KestrelClient, kestrel_reply_length),
           "redis": (RedisClient, redis_reply_length)}


def protocol(server: str) -> str:
    return "redis" if server == "redis" else "kestrel"


async def connect(server: str, port: int):
    kind, reply_length = CLIENTS[protocol(server)]
    _, connection = await asyncio.get_running_loop().create_connection(
        lambda: Connection(reply_length), "127.0.0.1", port)
    return kind(connection)


class Putter(asyncio.Protocol):
    """A put-many client: one put in flight; each reply sends the next put straight from the
    callback (no coroutine step per put: on 2 cores the clients' CPU is the servers' CPU)."""

    def __init__(self, request: bytes, ok, reply_length, count: int, latencies: list[float]):
        self.request, self.ok, self.reply_length = request, ok, reply_length
        self.left, self.latencies = count, latencies
        self.buffer = bytearray()
        self.finished = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def start(self) -> None:
        if self.left:
            self.send_next()
        else:
            self.finished.set_result(None)

    def send_next(self) -> None:
        self.left -= 1
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        size = self.reply_length(self.buffer)
        if not size or self.finished.done():
            return
        self.latencies.append(time.perf_counter() - self.sent_at)
        reply = bytes(self.buffer[:size])
        del self.buffer[:size]
        if not self.ok(reply):
            self.finished.set_exception(AssertionError(f"unexpected reply {reply[:80]!r}"))
        elif self.left:
            self.send_next()
        else:
            self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError("the server closed the connection"))


PUT_REQUESTS = {  # the request each server gets, and what a good reply looks like
    "kestrel": (lambda queue, data: b"set %s 0 0 %d\r\n%s\r\n" % (queue, len(data), data),
                lambda reply: reply == b"STORED\r\n"),
    "redis": (lambda queue, data: RedisClient.command(b"LPUSH", queue, data),
              lambda reply: reply.startswith(b":")),
}


async def put_many(server: str, port: int, total: int, clients: int
                   ) -> tuple[float, list[float], int]:
    """`total` puts shared by `clients` connections; seconds, latencies, items in the queue."""
    latencies: list[float] = []
    make_request, ok = PUT_REQUESTS[protocol(server)]
    request = make_request(b"putmany", PAYLOAD)
    reply_length = CLIENTS[protocol(server)][1]
    loop = asyncio.get_running_loop()
    putters = []
    for number in range(clients):
        count = total // clients + (number < total % clients)
        _, putter = await loop.create_connection(
            lambda count=count: Putter(request, ok, reply_length, count, latencies), "127.0.0.1", port)
        putters.append(putter)
    started = time.perf_counter()
    for putter in putters:
        putter.start()
    await asyncio.gather(*(putter.finished for putter in putters))
    elapsed = time.perf_counter() - started
    for putter in putters:
        putter.transport.close()
    checker = await connect(server, port)
    moved = await checker.length(b"putmany")
    checker.connection.close()
    return elapsed, latencies, moved


async def flood(server: str, port: int, total: int) -> tuple[float, list[float], int]:
    """One producer, one consumer; seconds, the producer's latencies, items consumed intact."""
    producer, consumer = await connect(server, port), await connect(server, port)
    latencies: list[float] = []

    async def produce():
        for _ in range(total):
            started = time.perf_counter()
            await producer.put(b"flood", PAYLOAD)
            latencies.append(time.perf_counter() - started)

    async def consume():
        got = intact = misses = 0
        while got < total and misses < 5:  # 5 empty waits of a second: the producer is done
            data = await consumer.take(b"flood")
            if data is None:
                misses += 1
                continue
            got, misses = got + 1, 0
            intact += data == PAYLOAD
        return intact

    started = time.perf_counter()
    _, moved = await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - started
    for conn in (producer, consumer):
        conn.connection.close()
    return elapsed, latencies, moved


def start_server(server: str, fsync: str, data_dir: Path) -> ManagedProcess:
    if server in KESTREL_EVENT_LOOPS:
        return kestrel_process(data_dir, "--fsync", fsync, "--log-level", "WARNING",
                               "--event-loop", KESTREL_EVENT_LOOPS[server]).start()
    port = free_port()
    persistence = (["--appendonly", "yes", "--appendfsync", "always"] if fsync == "always"
                   else ["--appendonly", "no"])
    return ManagedProcess("redis", [redis_server_binary(), "--bind", "127.0.0.1", "--port",
                                    str(port), "--save", "", "--dir", str(data_dir),
                                    *persistence], port=port).start()


def run_one(server: str, workload: str, fsync: str, items: int, clients: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        process = start_server(server, fsync, Path(folder))
        try:
            if workload == "put-many":
                run = put_many(server, process.port, items, clients)
            else:
                run = flood(server, process.port, items)
            # The clients run on uvloop where it is installed, whichever loop the server runs on:
            # asyncio's own loop reads into a fresh 256 KiB buffer for every reply (three memory
            # system calls each), which made the clients, not the servers, the limit.
            elapsed, latencies, moved = event_loop_runner("auto")(run)
        finally:
            process.stop()
            process.remove_log()
    return {"server": server, "workload": workload, "fsync": fsync, "items": items,
            "moved": moved, "items_per_s": round(moved / elapsed),
            "p50_ms": round(statistics.median(latencies) * 1000, 3),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 3)}


def run_benchmark(put_many_items: int, clients: int, flood_items: int, rounds: int = 1) -> list[dict]:
    """Every workload on every server, `rounds` times each, taking turns; for each server, the
    round with the median throughput. The ratios are taken round by round, each against the run
    beside it, and given as their median and spread: a noisy moment moves the servers of one round
    together, and their ratio much less. Prints one line per workload and fsync policy."""
    rows = []
    for workload, items in (("put-many", put_many_items), ("flood", flood_items)):
        for fsync in ("always", "never"):
            runs: dict[str, list[dict]] = {server: [] for server in SERVERS}
            for _ in range(rounds):  # turn about, so that a noisy moment hits every server alike
                for server in SERVERS:
                    runs[server].append(run_one(server, workload, fsync, items, clients))
            medians = [median_run(runs[server]) for server in SERVERS]
            medians[0]["ratio_to_redis"] = ratios(runs["kestrel"], runs["redis"])
            medians[0]["event_loop_gain"] = ratios(runs["kestrel"], runs["kestrel-asyncio"])
            rows += medians
            print(result_line(*medians), flush=True)
    return rows


def ratios(ours: list[dict], theirs: list[dict]) -> dict:
    """Round by round, our throughput over theirs: the median, and the lowest and highest."""
    each = [a["items_per_s"] / b["items_per_s"] for a, b in zip(ours, theirs, strict=True)]
    return {"median": round(statistics.median(each), 3), "low": round(min(each), 3), "high": round(max(each), 3),
            "rounds": [round(ratio, 3) for ratio in each]}


def median_run(runs: list[dict]) -> dict:
    ordered = sorted(runs, key=lambda row: row["items_per_s"])
    row = dict(ordered[len(ordered) // 2])
    row["rounds"] = len(runs)
    row["moved"] = min(run["moved"] for run in runs)  # every round must move every item
    return row


def result_line(ours: dict, plain: dict, redis: dict) -> str:
    """Our server (on uvloop where it is installed), the same on asyncio's own loop, and Redis;
    each ratio as the median of the rounds' ratios, with their spread when there were several."""
    return (f"{ours['workload']:9} fsync={ours['fsync']:6} kestrel {ours['items_per_s']:>6} items/s"
            f"  p50 {ours['p50_ms']:6.2f} ms  p99 {ours['p99_ms']:6.2f} ms"
            f" | redis {redis['items_per_s']:>6} items/s  p50 {redis['p50_ms']:6.2f} ms"
            f"  p99 {redis['p99_ms']:6.2f} ms"
            f" (ratio {spread(ours.get('ratio_to_redis'), ours['items_per_s'] / redis['items_per_s'])})"
            f" | kestrel on asyncio's loop {plain['items_per_s']:>6} items/s"
            f" ({EVENT_LOOP} {spread(ours.get('event_loop_gain'), ours['items_per_s'] / plain['items_per_s'])}x)")


def spread(ratio: dict | None, single: float) -> str:
    if ratio is None or ratio["low"] == ratio["high"]:
        return f"{ratio['median'] if ratio else single:.2f}"
    return f"{ratio['median']:.2f}, rounds {ratio['low']:.2f}-{ratio['high']:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="workbook bench kestrel")
    parser.add_argument("--quick", action="store_true", help="a tenth of put-many's items, half of flood's")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="runs of each workload per server, taking turns; the medians are shown "
                             f"(default {ROUNDS})")
    parser.add_argument("--out", type=Path, default=Path("bench-results"),
                        help="folder for kestrel.json and kestrel.txt, the printed table (default bench-results)")
    args = parser.parse_args(argv)
    # Flood stays at half its size: a shorter flood is a few hundred milliseconds, too short to time.
    put_many_items, flood_items = (10_000, 5_000) if args.quick else (100_000, 10_000)
    rounds = args.rounds
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    rows = run_benchmark(put_many_items, 100, flood_items, rounds)
    table = [result_line(*rows[n:n + len(SERVERS)]) for n in range(0, len(rows), len(SERVERS))]
    write_results(args.out, "kestrel", rows, "\n".join(table))
    missing = [row for row in rows if row["moved"] != row["items"]]
    for row in missing:
        print(f"{row['server']} {row['workload']} fsync={row['fsync']}: only {row['moved']} of"
              f" {row['items']} items arrived")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
