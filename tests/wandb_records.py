"""Read the records of an offline W&B run file (``run-*.wandb``) without network or W&B's server.

The file is W&B's LevelDB-style log: a 7-byte header, then 32 KiB blocks of chunks, each with a
7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) around protobuf Records.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending, records = 7, b"", []
    while pos + 7 <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < 7:
            pos += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left_in_block
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def run_contents(path: Path) -> dict[str, set[str]]:
    """Keys of the run's config, history (metrics) and summary; its tags and group."""
    out = {"config": set(), "history": set(), "summary": set(), "tags": set(), "group": set()}
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["tags"] |= set(record.run.tags)
            out["group"] |= {record.run.run_group} if record.run.run_group else set()
        elif kind == "config":
            out["config"] |= {item.key for item in record.config.update}
        elif kind == "history":
            out["history"] |= {item.key or "/".join(item.nested_key) for item in record.history.item}
        elif kind == "summary":
            out["summary"] |= {item.key or "/".join(item.nested_key) for item in record.summary.update}
    return out


def run_contents_when_written(path: Path, timeout: float = 30.0) -> dict[str, set[str]]:
    """:func:`run_contents` once the file holds the config and some metrics: W&B's service may
    still be flushing an offline run for a moment after ``wandb.finish()`` returns when several
    runs finish at once (two test workers)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        contents = run_contents(path)
        if (contents["config"] and (contents["history"] or contents["summary"])) or time.monotonic() > deadline:
            return contents
        time.sleep(0.5)
