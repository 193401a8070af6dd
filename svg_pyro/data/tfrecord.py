"""A small TFRecord reader/writer and a ``tf.train.Example`` decoder, with no TensorFlow.

TFRecord framing, per record: ``uint64`` little-endian payload length, ``uint32`` masked CRC32C
of those 8 bytes, the payload, ``uint32`` masked CRC32C of the payload, where
``mask(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2^32)``. Every checksum is verified.
CRC32C comes from ``google-crc32c`` (C, several GB/s).

The payloads of BAIR's files are ``tf.train.Example`` protobufs; :func:`parse_example` decodes
that one message type straight from the protobuf wire format.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import google_crc32c
import numpy as np

_MASK_DELTA = 0xA282EAD8
HEADER_BYTES = 12  # length (8) + its checksum (4)
FOOTER_BYTES = 4  # payload checksum


class RecordError(ValueError):
    """A TFRecord file is truncated or corrupt, or a record is not what it should be."""


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    """The TFRecord checksum of ``data``: CRC32C (Castagnoli), rotated and offset."""
    crc = google_crc32c.value(data if isinstance(data, bytes) else bytes(data))
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame_record(payload: bytes) -> bytes:
    """``payload`` with its TFRecord header and footer."""
    header = struct.pack("<Q", len(payload))
    return b"".join(
        [
            header,
            struct.pack("<I", masked_crc32c(header)),
            payload,
            struct.pack("<I", masked_crc32c(payload)),
        ]
    )


def write_records(path: str | Path, payloads: Iterable[bytes]) -> Path:
    """Write ``payloads`` as a TFRecord file (no compression)."""
    path = Path(path)
    with open(path, "wb") as f:
        for payload in payloads:
            f.write(frame_record(payload))
    return path


def record_index(path: str | Path) -> list[tuple[int, int]]:
    """``(payload offset, payload length)`` of every record in the file at ``path``.

    Reads only the 12-byte headers: it checks each length's checksum and that every record
    lies wholly inside the file (payload checksums are checked by :func:`read_record`).
    Raises :class:`RecordError` naming the file, the record and the problem.
    """
    path = Path(path)
    size = path.stat().st_size
    index = []
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            number = len(index)
            header = f.read(HEADER_BYTES)
            if len(header) < HEADER_BYTES:
                raise RecordError(
                    f"{path}: truncated: record {number} at byte {pos} has a "
                    f"{len(header)}-byte header (12 expected)"
                )
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            (crc,) = struct.unpack("<I", header[8:])
            if masked_crc32c(length_bytes) != crc:
                raise RecordError(
                    f"{path}: corrupt: record {number} at byte {pos}: length checksum mismatch"
                )
            end = pos + HEADER_BYTES + length + FOOTER_BYTES
            if end > size:
                raise RecordError(
                    f"{path}: truncated: record {number} at byte {pos} needs {end - pos} bytes "
                    f"but the file ends after {size - pos}"
                )
            index.append((pos + HEADER_BYTES, length))
            pos = end
            f.seek(pos)
    return index


def read_record(f: BinaryIO, offset: int, length: int, path: str | Path, number: int) -> bytes:
    """The payload at ``offset`` of open file ``f``, after checking its checksum."""
    f.seek(offset)
    data = f.read(length + FOOTER_BYTES)
    if len(data) < length + FOOTER_BYTES:
        raise RecordError(f"{path}: truncated: record {number} ends early")
    payload = data[:length]
    (crc,) = struct.unpack("<I", data[length:])
    if masked_crc32c(payload) != crc:
        raise RecordError(f"{path}: corrupt: record {number}: data checksum mismatch")
    return payload


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Every payload of a TFRecord file in order, each checksum verified."""
    path = Path(path)
    index = record_index(path)
    with open(path, "rb") as f:
        for number, (offset, length) in enumerate(index):
            yield read_record(f, offset, length, path, number)


# -- tf.train.Example from the protobuf wire format ------------------------------------------------
# message Example  { Features features = 1; }
# message Features { map<string, Feature> feature = 1; }   (map entry: key = 1, value = 2)
# message Feature  { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2;
#                                 Int64List int64_list = 3; } }
# message BytesList { repeated bytes value = 1; }  FloatList { repeated float value = 1 [packed]; }
# message Int64List { repeated int64 value = 1 [packed]; }

Feature = list | np.ndarray  # list[bytes] for bytes_list, float32/int64 arrays otherwise


class _WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _WireError("varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _WireError("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """``(field number, wire type, value)`` of each field of a message; length-delimited
    values are memoryviews into ``buf``, varints and fixed-width values are ints."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise _WireError(f"unsupported wire type {wire}")
        if pos > end:
            raise _WireError("field runs past the end of its message")
        yield number, wire, value


def _feature(buf: memoryview) -> Feature:
    for number, wire, value in _fields(buf):
        if wire != 2:
            continue
        if number == 1:  # BytesList
            return [bytes(v) for n, w, v in _fields(value) if n == 1 and w == 2]
        if number == 2:  # FloatList: packed floats, or one fixed32 per value
            parts = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    if len(v) % 4:
                        raise _WireError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(v, dtype="<f4"))
                elif w == 5:
                    parts.append(np.frombuffer(struct.pack("<I", v), dtype="<f4"))
            return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
        if number == 3:  # Int64List: packed varints, or one varint per value
            values = []
            for n, w, v in _fields(value):
                if n != 1:
                    continue
                if w == 2:
                    pos = 0
                    while pos < len(v):
                        x, pos = _varint(v, pos)
                        values.append(x)
                elif w == 0:
                    values.append(v)
            return np.array([x - (1 << 64) if x >= 1 << 63 else x for x in values], np.int64)
    return []  # a Feature with no kind set


def parse_example(payload: bytes | memoryview) -> dict[str, Feature]:
    """Decode a serialized ``tf.train.Example`` into ``{key: value}``.

    Values are ``list[bytes]`` (bytes_list), float32 arrays (float_list) or int64 arrays
    (int64_list). Raises ``ValueError`` if the bytes are not a well-formed message.
    """
    buf = memoryview(payload)
    out: dict[str, Feature] = {}
    for number, wire, features in _fields(buf):
        if number != 1 or wire != 2:
            continue
        for n, w, entry in _fields(features):
            if n != 1 or w != 2:
                continue
            key, value = "", memoryview(b"")
            for en, ew, ev in _fields(entry):
                if en == 1 and ew == 2:
                    key = bytes(ev).decode("utf-8")
                elif en == 2 and ew == 2:
                    value = ev
            out[key] = _feature(value)
    return out


def parse_example_checked(payload: bytes, path: str | Path, number: int) -> dict[str, Feature]:
    """:func:`parse_example` with errors that name the file and record."""
    try:
        return parse_example(payload)
    except (_WireError, UnicodeDecodeError) as err:
        raise RecordError(f"{path}: record {number} is not a tf.train.Example ({err})") from None


__all__ = [
    "RecordError",
    "frame_record",
    "iter_records",
    "masked_crc32c",
    "parse_example",
    "read_record",
    "record_index",
    "write_records",
]
