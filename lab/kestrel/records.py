"""The journal's records: how each change to a queue is written, and read back.

Records follow Kestrel's layout (one opcode byte, then little-endian fields) and its opcode
numbers, with one addition: every record ends with a CRC-32 of its bytes, so that a torn write
or garbage at the end of the file is recognised instead of being replayed as items.

    ADD              02 | u32 length | i64 add time ms | i64 expiry ms | data | u32 crc
    REMOVE           01 | u32 crc
    REMOVE_TENTATIVE 09 | u32 xid | u32 crc       (a `get q/open` took the head)
    UNREMOVE         05 | u32 xid | u32 crc       (abort or rollback: back to the head)
    CONFIRM_REMOVE   06 | u32 xid | u32 crc       (`get q/close`: gone for good)

`length` counts the two times and the data (16 + len(data)), as in Kestrel's ADDX record.
Expiry 0 means "never".
"""


from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.kestrel.items import Item

OP_REMOVE = 1
OP_ADD = 2  # Kestrel's ADDX: an item with its expiry
OP_UNREMOVE = 5
OP_CONFIRM_REMOVE = 6
OP_REMOVE_TENTATIVE = 9
XID_OPS = (OP_REMOVE_TENTATIVE, OP_UNREMOVE, OP_CONFIRM_REMOVE)
OP_NAMES = {OP_REMOVE: "REMOVE", OP_ADD: "ADD", OP_UNREMOVE: "UNREMOVE",
            OP_CONFIRM_REMOVE: "CONFIRM_REMOVE", OP_REMOVE_TENTATIVE: "REMOVE_TENTATIVE"}

_ADD_HEAD = struct.Struct("<BIqq")  # opcode, length, add time, expiry: 21 bytes
_XID_RECORD = struct.Struct("<BI")  # opcode, xid: 5 bytes
_CRC = struct.Struct("<I")
ADD_OVERHEAD = _ADD_HEAD.size + _CRC.size  # bytes an ADD record adds to its data


def _with_crc(record: bytes) -> bytes:
    return record + _CRC.pack(zlib.crc32(record))


def encode_add(add_time_ms: int, expiry_ms: int, data: bytes) -> bytes:
    head = _ADD_HEAD.pack(OP_ADD, 16 + len(data), add_time_ms, expiry_ms)
    return b"".join((head, data, _CRC.pack(zlib.crc32(data, zlib.crc32(head)))))


REMOVE_RECORD = _with_crc(bytes([OP_REMOVE]))


def encode_xid(op: int, xid: int) -> bytes:
    return _with_crc(_XID_RECORD.pack(op, xid))


@dataclass(slots=True)
class Record:
    op: int
    offset: int  # where the record starts in the file
    xid: int = 0
    add_time: int = 0
    expiry: int = 0
    data: bytes = b""


class CorruptRecord(Exception):
    """The bytes at an offset are not a whole, intact record."""


class ReadWindow:
    """Reads from the journal file by offset through a cached window, for replay and read-behind.

    The file only ever grows at the end, so cached bytes never go stale (truncation and
    compaction call `reset`).
    """

    CHUNK = 1024 * 1024

    def __init__(self, fd: int):
        self.fd = fd
        self.reset(fd)

    def reset(self, fd: int) -> None:
        self.fd = fd
        self.start = 0
        self.window = b""

    def read(self, offset: int, size: int) -> bytes:
        end = offset + size
        if not (self.start <= offset and end <= self.start + len(self.window)):
            self.window = os.pread(self.fd, max(size, self.CHUNK), offset)
            self.start = offset
        return self.window[offset - self.start:end - self.start]


def decode_at(reader: ReadWindow, offset: int, file_size: int) -> tuple[Record, int]:
    """The record at `offset` and the offset after it; CorruptRecord if it is not intact."""
    first = reader.read(offset, 1)
    if not first:
        raise CorruptRecord("end of file")
    op = first[0]
    if op == OP_ADD:
        head = reader.read(offset, _ADD_HEAD.size)
        if len(head) < _ADD_HEAD.size:
            raise CorruptRecord("truncated ADD header")
        _, length, add_time, expiry = _ADD_HEAD.unpack(head)
        end = offset + 5 + length + _CRC.size
        # Checking the length against the file first means garbage never makes us allocate GiBs.
        if length < 16 or end > file_size:
            raise CorruptRecord(f"ADD length {length} runs past the end of the file")
        body = reader.read(offset, end - offset)
        if len(body) < end - offset:
            raise CorruptRecord("truncated ADD record")
        (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
        if zlib.crc32(memoryview(body)[:-_CRC.size]) != crc:
            raise CorruptRecord("ADD checksum mismatch")
        return Record(OP_ADD, offset, add_time=add_time, expiry=expiry,
                      data=body[_ADD_HEAD.size:-_CRC.size]), end
    if op == OP_REMOVE:
        size = 1 + _CRC.size
    elif op in XID_OPS:
        size = _XID_RECORD.size + _CRC.size
    else:
        raise CorruptRecord(f"unknown opcode {op}")
    body = reader.read(offset, size)
    if len(body) < size:
        raise CorruptRecord(f"truncated {OP_NAMES[op]} record")
    (crc,) = _CRC.unpack_from(body, size - _CRC.size)
    if zlib.crc32(body[:-_CRC.size]) != crc:
        raise CorruptRecord(f"{OP_NAMES[op]} checksum mismatch")
    xid = _XID_RECORD.unpack_from(body)[1] if op in XID_OPS else 0
    return Record(op, offset, xid=xid), offset + size


def compacted_records(opens: list[tuple[int, Item]], waiting: list[Item]) -> Iterator[bytes]:
    """The records of a compacted journal: open reads first, re-opened under their own xids,
    then the waiting items. A generator over copies, so a worker thread can run it."""
    for _, item in opens:
        yield encode_add(item.add_time, item.expiry, item.data)
    for xid, _ in opens:
        yield encode_xid(OP_REMOVE_TENTATIVE, xid)
    for item in waiting:
        yield encode_add(item.add_time, item.expiry, item.data)
