"""`python -m lab.kestrel` (or `workbook kestrel`): run the Kestrel-protocol queue server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from lab.kestrel import DEFAULT_PORT, VERSION
from lab.kestrel.config import (
    ConfigError,
    FsyncPolicy,
    QueueLimits,
    ServerConfig,
    parse_bytes,
    queue_limits_override,
)
from lab.kestrel.server import KestrelServer

log = logging.getLogger("lab.kestrel")


def _size(text: str) -> int:
    try:
        return parse_bytes(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _fsync(text: str) -> FsyncPolicy:
    try:
        return FsyncPolicy.parse(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kestrel",
        description="A Kestrel-protocol (memcache) queue server with a journal per queue.")
    parser.add_argument("--version", action="version", version=VERSION)
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    net.add_argument("--port", type=int, default=DEFAULT_PORT, help="default %(default)s")
    net.add_argument("--max-connections", type=_positive_int, default=1024,
                     help="more clients are refused with SERVER_ERROR (default %(default)s)")
    net.add_argument("--idle-timeout", type=_seconds, metavar="SECONDS",
                     help="close clients that send nothing for this long (default: never)")
    store = parser.add_argument_group("storage")
    store.add_argument("--data-dir", type=Path, default=Path("kestrel-data"),
                       help="folder of the queue journals (default ./%(default)s)")
    store.add_argument("--max-queues", type=_positive_int, default=512,
                       help="a new queue beyond this many is refused with SERVER_ERROR; each holds an "
                            "open file (default %(default)s)")
    store.add_argument("--fsync", type=_fsync, default=FsyncPolicy("always"),
                       metavar="always|every:MS|never",
                       help="always: STORED only once on disk (default); every:MS: sync in the "
                            "background; never: leave it to the OS")
    store.add_argument("--max-memory", type=_size, default=128 * 1024 * 1024, metavar="BYTES",
                       help="per queue: items beyond this stay in the journal and are read back "
                            "as the queue drains (default 128MiB)")
    store.add_argument("--journal-compact-bytes", type=_size, default=16 * 1024 * 1024,
                       metavar="BYTES",
                       help="rewrite a journal over this size once its queue is empty or it is "
                            "4x its live data (default 16MiB)")
    limits = parser.add_argument_group("limits of every queue")
    limits.add_argument("--max-items", type=_positive_int, help="default: no limit")
    limits.add_argument("--max-size", type=_size, metavar="BYTES", help="default: no limit")
    limits.add_argument("--max-item-size", type=_size, default=1024 * 1024, metavar="BYTES",
                        help="larger items get NOT_STORED (default 1MiB)")
    limits.add_argument("--discard-old-when-full", action="store_true",
                        help="a full queue drops its oldest items instead of refusing new ones")
    limits.add_argument("--max-age", type=_seconds, metavar="SECONDS",
                        help="items expire after this long at most")
    limits.add_argument("--open-timeout", type=_seconds, metavar="SECONDS",
                        help="an open read not closed within this long goes back to the queue")
    limits.add_argument("--queue", action="append", default=[], metavar="NAME:KEY=VALUE[,KEY=VALUE]",
                        help="one queue's own limits, e.g. tweets:max_items=100000,max_age=86400; "
                             "keys: max_items, max_size, max_item_size, discard_old_when_full, "
                             "max_age, open_timeout (repeat for more queues)")
    limits.add_argument("--max-open-reads", type=_positive_int, default=100,
                        help="open reads per connection and queue (default %(default)s)")
    parser.add_argument("--event-loop", default="auto", choices=["auto", "uvloop", "asyncio"],
                        help="auto: uvloop where it is installed, else asyncio's own (default auto)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def event_loop_runner(choice: str):
    """`asyncio.run`, or uvloop's: the same asyncio API, with its event loop and transports in C
    (`workbook bench kestrel` measures the difference). Raises ImportError if uvloop is asked for
    and not installed."""
    if choice == "asyncio":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return asyncio.run
    return uvloop.run


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """The server's settings; raises ConfigError for a malformed --queue."""
    limits = QueueLimits(
        max_items=args.max_items,
        max_size=args.max_size,
        max_item_size=args.max_item_size,
        discard_old_when_full=args.discard_old_when_full,
        max_age=args.max_age,
        open_timeout=args.open_timeout,
    )
    return ServerConfig(
        data_dir=args.data_dir.resolve(),
        host=args.host,
        port=args.port,
        fsync=args.fsync,
        limits=limits,
        queue_limits=dict(queue_limits_override(text, limits) for text in args.queue),
        max_memory=args.max_memory,
        max_open_reads=args.max_open_reads,
        max_connections=args.max_connections,
        max_queues=args.max_queues,
        idle_timeout=args.idle_timeout,
        journal_compact_bytes=args.journal_compact_bytes,
    )


async def serve(config: ServerConfig) -> None:
    server = KestrelServer(config)
    loop = asyncio.get_running_loop()
    # Before the port opens: whoever sees it answer may signal at once, and must get a clean stop.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, server.request_shutdown)
    await server.start()
    await server.wait_stopped()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s kestrel %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except ConfigError as error:
        parser.error(f"--queue: {error}")
    try:
        run = event_loop_runner(args.event_loop)
    except ImportError:
        parser.error("--event-loop uvloop: uvloop is not installed (pip install uvloop)")
    try:
        run(serve(config))
    except OSError as error:  # port in use, data folder not writable...
        log.error("cannot run: %s", error)
        return 1
    return 0
