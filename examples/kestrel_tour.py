"""A session with the Kestrel-protocol server over a raw socket, then its journal, byte by byte.

    python examples/kestrel_tour.py > docs/generated/kestrel-tour.txt

Chapter 03 includes the output; a test runs this and fails if the committed output is stale.
Times in the journal change on every run, and so do the checksums of records holding them:
they are shown as `tt` and `cc`.
"""

import socket
import struct
import sys
import tempfile
from pathlib import Path

from lab.runtime.kestrel_server import kestrel_process

# --8<-- [start:session]
SESSION = [
    b"set tweets 0 0 5\r\nfirst\r\n",
    b"set tweets 0 0 6\r\nsecond\r\n",
    b"get tweets/open\r\n",  # a reliable read: "first" is open, not gone
    b"get tweets/close/open\r\n",  # confirm "first", open "second", in one round trip
    b"get tweets/abort\r\n",  # give "second" back: it returns to the head of the queue
    b"stats\r\n",
]
# --8<-- [end:session]

# What chapter 03 asks you to type: the same bytes go to the tour's server, and the answer is
# printed as netcat prints it.
NETCAT_BYTES = b"set demo 0 0 5\r\nhello\r\nget demo/open\r\nget demo/close\r\nquit\r\n"
NETCAT_COMMAND = (
    "printf 'set demo 0 0 5\\r\\nhello\\r\\nget demo/open\\r\\nget demo/close\\r\\nquit\\r\\n'"
    " | nc 127.0.0.1 22133"
)

SHOWN_STATS = ("queue_tweets_items", "queue_tweets_total_items", "queue_tweets_open_transactions")
OPCODES = {1: "REMOVE", 2: "ADD", 5: "UNREMOVE", 6: "CONFIRM_REMOVE", 9: "REMOVE_TENTATIVE"}


def talk(port: int) -> list[str]:
    lines = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for request in SESSION:
            sock.sendall(request)
            reply = b""
            while not reply.endswith((b"END\r\n", b"STORED\r\n")):
                reply += sock.recv(65536)
            lines += [f"> {line}" for line in request.decode().splitlines()]
            for line in reply.decode().splitlines():
                if not line.startswith("STAT ") or line.split()[1] in SHOWN_STATS:
                    lines.append(f"< {line}")
    return lines


def netcat(port: int) -> list[str]:
    """Send NETCAT_BYTES in one go, as printf | nc does; everything the server says until it hangs up."""
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(NETCAT_BYTES)
        while chunk := sock.recv(65536):  # `quit` closes the connection
            reply += chunk
    return [f"$ {NETCAT_COMMAND}", *reply.decode().splitlines()]


def journal_records(data: bytes) -> list[str]:
    """One line per record: its bytes in hex (times masked), then what they mean."""
    lines, offset = [], 0
    while offset < len(data):
        op = data[offset]
        if op == 2:  # ADD: opcode, u32 length, i64 add time, i64 expiry, data, u32 crc
            (length,) = struct.unpack_from("<I", data, offset + 1)
            size = 1 + 4 + length + 4
            record = bytearray(data[offset : offset + size])
            payload = bytes(record[21:-4])
            shown = record.hex(" ").split(" ")
            shown[5:13] = ["tt"] * 8  # the add time, in milliseconds
            shown[-4:] = ["cc"] * 4  # the checksum covers the time, so it changes too
            meaning = f"ADD length={length} add_time=tt expiry=0 data={payload!r} crc=cc"
        elif op == 1:  # REMOVE: opcode, crc
            size, meaning = 5, "REMOVE crc"
            shown = data[offset : offset + size].hex(" ").split(" ")
        else:  # opcode, u32 transaction id, crc
            size = 9
            (xid,) = struct.unpack_from("<I", data, offset + 1)
            meaning = f"{OPCODES[op]} xid={xid} crc"
            shown = data[offset : offset + size].hex(" ").split(" ")
        lines.append(f"{' '.join(shown):<62} {meaning}")
        offset += size
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        with kestrel_process(Path(data_dir)) as server:
            transcript = talk(server.port)
            typed = netcat(server.port)  # another queue: the journal of `tweets` is as the session left it
        journal = (Path(data_dir) / "tweets").read_bytes()
    print("# the session (> sent, < received)")
    print("\n".join(transcript))
    print()
    print(f"# the journal file `tweets`: {len(journal)} bytes")
    print("\n".join(journal_records(journal)))
    print()
    print("# the same kind of talk with netcat, against `workbook up 03-kestrel`")
    print("\n".join(typed))


if __name__ == "__main__":
    sys.exit(main())
