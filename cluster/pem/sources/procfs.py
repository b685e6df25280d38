"""Small, fast /proc readers shared by the metrics connectors (process, network, JVM stats).

Why raw os.open/os.read: a collection touches two or three files per process every second, and
with a thousand processes the Python overhead of open() (a TextIOWrapper per file) is most of the
cost. Every reader returns None when the process has gone, because pids vanish between listing
/proc and reading it; callers count the other failures as loss.
"""

from __future__ import annotations

import errno
import os

import pyarrow as pa

from cluster import schemas

#: errors that mean "the process exited meanwhile", which is not loss
GONE = (errno.ENOENT, errno.ESRCH)


class ProcReadError(OSError):
    """A /proc file exists but cannot be read (permissions, a kernel without the feature)."""


def list_pids(proc: str = "/proc") -> list[int]:
    """Every process (thread-group leader) now in /proc, ascending."""
    pids = [int(e.name) for e in os.scandir(proc) if e.name.isdigit()]
    pids.sort()
    return pids


def read_bytes(path: str, size: int = 65536) -> bytes | None:
    """The file's content (up to size bytes); None when the process has gone; ProcReadError otherwise.

    One read(2): enough for small /proc files, which the kernel hands over whole. Files generated
    a page at a time (maps) need read_all.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in GONE:
            return None
        raise ProcReadError(e.errno, f"cannot open {path}: {e.strerror}") from e
    try:
        return os.read(fd, size)
    except OSError as e:
        if e.errno in GONE:
            return None
        raise ProcReadError(e.errno, f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def read_all(path: str, limit: int = 1 << 26) -> bytes | None:
    """The whole file, read until EOF (or limit bytes); None when the process has gone."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError as e:
        if e.errno in GONE:
            return None
        raise ProcReadError(e.errno, f"cannot read {path}: {e.strerror}") from e


def stat_fields(raw: bytes) -> list[bytes]:
    """/proc/<pid>/stat split after the comm field: index 0 is field 3 (state), so field N is [N-3].

    comm may contain spaces and parentheses, so the split starts after the LAST ')'.
    """
    return raw[raw.rfind(b")") + 2 :].split()


def time_column(now_ns: int, n: int) -> pa.Array:
    return pa.array([now_ns] * n, pa.int64()).cast(schemas.TIME64NS)


def times_column(times_ns: list[int]) -> pa.Array:
    return pa.array(times_ns, pa.int64()).cast(schemas.TIME64NS)


def batch(schema: pa.Schema, columns: dict[str, object]) -> pa.RecordBatch:
    """A record batch with exactly the schema's columns, in its order, typed as it says."""
    arrays = []
    for field in schema:
        col = columns[field.name]
        arrays.append(col if isinstance(col, pa.Array) else pa.array(col, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
