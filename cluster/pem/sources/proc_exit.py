"""proc_exit (Pixie's proc_exit_tracer): abnormal process exits into proc_exit_events.

bpf/proc_exit.c fires on sched:sched_process_exit when the last thread of a process exits, reads
the wait status from task_struct.exit_code (offsets from the running kernel's BTF, see
kernel_btf.py) and emits only non-zero statuses: `exit 3` gives exit_code 3, signal 0; `kill -9`
gives exit_code 0, signal 9. The UPID's start time comes from the kernel too (the group leader's
start_boottime, in clock ticks like /proc/<pid>/stat), because by the time user space reads the
event the process may already be reaped.

Loss: ring-full drops and failed kernel reads are counted in the BPF program and reported as
events_lost; a record whose tgid read back through the BTF offset disagrees with the helper's tgid
means the offsets are wrong, which is counted and reported as an error rather than emitted.
"""

from __future__ import annotations

import os
import struct

from cluster import schemas
from cluster.pem.process_info import make_upid
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.kernel_btf import offsets
from cluster.pem.sources.procfs import batch, times_column
from cluster.pem.sources.tracepoint_program import TracepointProgram, tracepoint_format

TABLE = "proc_exit_events"
_EVENT = struct.Struct("<QQIIiI16s")
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
CNT_RING_FULL, CNT_READ_FAIL, CNT_EXITS = 0, 1, 2


class ProcExitConnector:
    """SourceConnector for the proc_exit_events table."""

    name = "proc_exit"

    def __init__(self, config: object = None, *, period_s: float = 0.2) -> None:
        self.period_s = period_s
        self._ctx: ConnectorContext | None = None
        self._prog: TracepointProgram | None = None
        self._rows: list[tuple[int, bytes, int, int, str]] = []
        self._offset_mismatch = 0
        self._final = [0, 0, 0]

    def start(self, ctx: ConnectorContext) -> None:
        offs = offsets(
            {
                "EXIT_CODE_OFF": ("task_struct", "exit_code"),
                "GROUP_LEADER_OFF": ("task_struct", "group_leader"),
                "START_BOOTTIME_OFF": ("task_struct", "start_boottime"),
                "TGID_OFF": ("task_struct", "tgid"),
            }
        )
        cflags = [f"-D{k}={v}" for k, v in offs.items()]
        if "group_dead" in tracepoint_format("sched", "sched_process_exit"):
            cflags.append("-DHAVE_GROUP_DEAD")
        prog = TracepointProgram("proc_exit.c", cflags, {"proc_exits": 64})
        prog.start()
        self._prog = prog
        self._ctx = ctx
        ctx.store.create(TABLE, schemas.PROC_EXIT_EVENTS)

    def _on_event(self, rec: memoryview) -> None:
        ktime, start_ns, tgid, tgid_read, code, _pad, comm = _EVENT.unpack_from(rec)
        if tgid_read != tgid:
            self._offset_mismatch += 1
            return
        assert self._ctx is not None and self._prog is not None
        upid = make_upid(self._ctx.asid, tgid, start_ns // _NS_PER_TICK)
        name = comm.split(b"\0", 1)[0].decode(errors="replace")
        self._rows.append((ktime + self._prog.wall_offset_ns, upid, (code >> 8) & 0xFF, code & 0x7F, name))

    def tick(self, now_ns: int) -> None:
        if self._ctx is None or self._prog is None:
            raise RuntimeError("proc_exit ticked before start()")
        self._prog.drain("proc_exits", self._on_event)
        self._flush()

    def _flush(self) -> None:
        if not self._rows or self._ctx is None:
            return
        rows, self._rows = self._rows, []
        t, upid, code, sig, comm = (list(c) for c in zip(*rows, strict=True))
        self._ctx.store.append(
            TABLE,
            batch(
                schemas.PROC_EXIT_EVENTS,
                {"time_": times_column(t), "upid": upid, "exit_code": code, "signal": sig, "comm": comm},
            ),
        )

    def stop(self) -> None:
        if self._prog is not None:
            self._prog.drain("proc_exits", self._on_event)
            self._final = [self._prog.counter("counters", i) for i in range(3)]
            self._prog.stop()
            self._prog = None
        self._flush()
        self._ctx = None

    def counters(self) -> dict[str, int]:
        c = self._final if self._prog is None else [self._prog.counter("counters", i) for i in range(3)]
        return {
            "ring_full": c[CNT_RING_FULL],
            "read_failures": c[CNT_READ_FAIL],
            "exits_seen": c[CNT_EXITS],
            "offset_mismatch": self._offset_mismatch,
        }

    def status(self) -> ConnectorStatus:
        c = self.counters()
        lost = c["ring_full"] + c["read_failures"] + c["offset_mismatch"]
        err = ""
        if c["offset_mismatch"]:
            err = f"{c['offset_mismatch']} exits dropped: task_struct offsets from BTF disagree with the kernel"
        elif lost:
            err = f"{c['ring_full']} exits lost to a full ring, {c['read_failures']} kernel reads failed"
        probes = self._prog.probes if self._prog is not None else []
        return ConnectorStatus(self.name, list(probes), lost, err)
