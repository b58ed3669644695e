"""A Kestrel-protocol queue server: Kestrel's memcache port, rebuilt in Python with asyncio.

Kestrel (Twitter's queue server, 2008-2016) let "any memcache client" use a queue: `set` puts an
item at the tail, `get` takes one from the head, `get q/open` ... `get q/close` is a reliable read.
Kestrel can no longer be built, so the workbook ships this small server that speaks its protocol.

Modules, from the bottom up:

- `config`: the server's settings (fsync policy, per-queue limits).
- `journal`: the append-only file behind each queue, its binary records, group commit, replay.
- `items`: what a queue holds: items, fetch kinds, open reads, waiters.
- `queue`: one persistent FIFO: items, reliable reads, waiters, expiry, limits, read-behind.
- `collection`: every queue of a server, fanout, and the numbers behind `stats`.
- `protocol`: parsing request lines and GET options (no I/O).
- `commands`: what each request does (set, get and its options, delete, flush, stats, ...).
- `connection`: one client's buffer, its requests answered in order, its replies written.
- `server`: the asyncio TCP server: listening, background work, stopping.
- `cli`: the command line (`python -m lab.kestrel`).
"""

VERSION = "2.4.1-workbook"
DEFAULT_PORT = 22133
