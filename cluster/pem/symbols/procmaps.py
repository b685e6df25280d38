"""A process's executable memory mappings from /proc/PID/maps, taken while it is alive.

Why a snapshot: a stack sampled in the kernel holds only virtual addresses, and once the process
exits /proc/PID/maps is gone, so the mapping (address -> file and offset) is copied when the
profiler first sees the process and kept until the process's samples have been symbolised.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset of start
    dev: str  # "major:minor" of the file's device: with inode, names one file across mount namespaces
    inode: int
    path: str  # "" for anonymous memory, "[vdso]" and the like for special mappings

    @property
    def is_file(self) -> bool:
        return self.inode != 0 and self.path.startswith("/")


class ProcMaps:
    """The executable mappings of one process, sorted by start address."""

    def __init__(self, pid: int, mappings: list[Mapping]) -> None:
        self.pid = pid
        self.mappings = sorted(mappings, key=lambda m: m.start)
        self._starts = [m.start for m in self.mappings]

    @classmethod
    def read(cls, pid: int, proc: str = "/proc") -> ProcMaps:
        """Raises OSError (ENOENT, ESRCH) when the process is gone."""
        with open(f"{proc}/{pid}/maps", "rb") as f:
            raw = f.read()
        return cls(pid, parse_maps(raw))

    def find(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def files(self) -> list[Mapping]:
        return [m for m in self.mappings if m.is_file]


def parse_maps(raw: bytes, executable_only: bool = True) -> list[Mapping]:
    """Parse the text of /proc/PID/maps; keep executable mappings unless told otherwise."""
    out: list[Mapping] = []
    for line in raw.splitlines():
        if executable_only:
            sp = line.find(b" ")  # "start-end rwxp ...": the x is the third permission letter
            if sp < 0 or line[sp + 3 : sp + 4] != b"x":
                continue
        parts = line.split(None, 5)
        if len(parts) < 5:
            continue
        lo, _, hi = parts[0].partition(b"-")
        path = parts[5].decode(errors="replace").strip() if len(parts) > 5 else ""
        out.append(Mapping(int(lo, 16), int(hi, 16), int(parts[2], 16), parts[3].decode(), int(parts[4]), path))
    return out
