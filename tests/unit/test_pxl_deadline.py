"""A query past its deadline stops at the next batch of any operator, naming it, instead of running
on after the client was told it failed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pyarrow as pa
import pytest

from cluster import pxl, schemas
from cluster.pxl.errors import PxlDeadlineError

SCHEMA = pa.schema([schemas.col("time_", schemas.TIME64NS), schemas.col("v", pa.int64())])


class SlowSource:
    """Test data: a table whose scan takes 20 ms a batch, 500 batches (10 s in all)."""

    def __init__(self) -> None:
        self.batches_read = 0

    def scan(self, table: str, start_ns: int | None, end_ns: int | None) -> Iterator[pa.RecordBatch]:
        for i in range(500):
            time.sleep(0.02)
            self.batches_read += 1
            yield pa.record_batch([pa.array([i], schemas.TIME64NS), pa.array([i], pa.int64())], schema=SCHEMA)


SCRIPT = """
import px
df = px.DataFrame(table='slow')
df = df.groupby('v').agg(n=('v', px.count))
px.display(df)
"""


def test_a_slow_query_stops_at_its_deadline():
    query = pxl.compile_pxl(SCRIPT, now_ns=time.time_ns(), schemas={"slow": SCHEMA})
    src = SlowSource()
    t0 = time.monotonic()
    with pytest.raises(PxlDeadlineError, match="operator: the query ran past its deadline"):
        pxl.execute(query, src, None, deadline=time.monotonic() + 0.3)
    assert time.monotonic() - t0 < 2.0
    assert src.batches_read < 100


def test_without_a_deadline_the_query_completes():
    class Quick(SlowSource):
        def scan(self, table, start_ns, end_ns):
            yield pa.record_batch([pa.array([1], schemas.TIME64NS), pa.array([7], pa.int64())], schema=SCHEMA)

    [(_, table)] = pxl.execute(pxl.compile_pxl(SCRIPT, now_ns=time.time_ns(), schemas={"slow": SCHEMA}),
                               Quick(), None)
    assert table.column("n").to_pylist() == [1]
