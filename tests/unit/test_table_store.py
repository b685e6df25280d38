import pyarrow as pa
import pytest

from cluster.store.table_store import SchemaMismatch, TableStore, UnknownTable

SCHEMA = pa.schema([pa.field("time_", pa.timestamp("ns", tz="UTC")), pa.field("v", pa.int64())])


def batch(times: list[int]) -> pa.RecordBatch:
    return pa.record_batch([pa.array(times, SCHEMA.field("time_").type), pa.array(times, pa.int64())],
                           schema=SCHEMA)


def values(batches) -> list[int]:
    return [v for b in batches for v in b.column("v").to_pylist()]


def test_oldest_batches_are_evicted_first_under_the_byte_cap():
    one = batch(list(range(100)))
    store = TableStore()
    t = store.create("t", SCHEMA, max_bytes=one.nbytes * 3)
    for i in range(5):
        t.append(batch([i * 1000 + j for j in range(100)]))
    st = t.stats()
    assert st.batches == 3 and st.rows == 300 and st.rows_evicted == 200
    assert st.bytes <= st.max_bytes
    assert st.min_time_ns == 2000 and st.max_time_ns == 4099
    assert values(t.scan())[0] == 2000


def test_scan_is_inclusive_and_slices_only_edge_batches():
    store = TableStore()
    t = store.create("t", SCHEMA)
    t.append(batch([1, 2, 3]))
    t.append(batch([4, 5, 6]))
    t.append(batch([7, 8, 9]))
    assert values(t.scan(3, 7)) == [3, 4, 5, 6, 7]
    assert values(t.scan(None, 2)) == [1, 2]
    assert values(t.scan(10, None)) == []
    assert values(store.scan("t", 5, 5)) == [5]


def test_a_single_batch_over_the_cap_is_kept():
    t = TableStore().create("t", SCHEMA, max_bytes=1)
    t.append(batch([1, 2]))
    assert t.stats().rows == 2


def test_unknown_table_lists_the_known_ones():
    store = TableStore()
    store.create("http_events", SCHEMA)
    with pytest.raises(UnknownTable, match="available tables: http_events"):
        store.get("nope")


def test_wrong_columns_are_refused():
    t = TableStore().create("t", SCHEMA)
    bad = pa.record_batch([pa.array([1])], names=["x"])
    with pytest.raises(SchemaMismatch):
        t.append(bad)
