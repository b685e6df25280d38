"""DataStream: ordering, timestamps per chunk, lazy coalescing, consumption and the byte cap."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.pem.data_stream import DEFAULT_MAX_BYTES, DataStream


def test_append_len_and_buffer() -> None:
    s = DataStream()
    assert len(s) == 0 and s.buffer == b""
    s.append(10, b"hello ")
    s.append(20, b"world")
    s.append(30, b"")  # empty syscalls are ignored
    assert len(s) == 11
    assert s.buffer == b"hello world"
    assert s.max_bytes == DEFAULT_MAX_BYTES == 1 << 20


def test_ts_at_maps_offsets_to_chunks() -> None:
    s = DataStream()
    s.append(10, b"abc")
    s.append(20, b"de")
    s.append(30, b"fgh")
    assert [s.ts_at(i) for i in range(8)] == [10, 10, 10, 20, 20, 30, 30, 30]
    assert s.ts_at(100) == 30  # past the end: last chunk


def test_consume_moves_offsets_and_timestamps() -> None:
    s = DataStream()
    s.append(10, b"abc")
    s.append(20, b"de")
    s.consume(2)
    assert s.buffer == b"cde" and len(s) == 3
    assert s.ts_at(0) == 10 and s.ts_at(1) == 20
    s.consume(2)
    assert s.buffer == b"e" and s.ts_at(0) == 20
    s.append(30, b"f")
    assert s.buffer == b"ef" and s.ts_at(1) == 30
    s.consume(100)  # clamps
    assert len(s) == 0 and s.buffer == b""
    s.append(40, b"g")
    assert s.ts_at(0) == 40


def test_consume_into_pending_chunks() -> None:
    s = DataStream()
    s.append(1, b"ab")
    s.append(2, b"cd")
    s.consume(3)  # before any coalesce
    assert s.buffer == b"d" and s.ts_at(0) == 2


def test_view_is_zero_copy_with_offset() -> None:
    s = DataStream()
    s.append(1, b"GET / HTTP/1.1\r\n\r\n")
    buf, start = s.view()
    assert start == 0
    s.consume(4)
    buf2, start2 = s.view()
    assert buf2 is buf and start2 == 4


def test_non_bytes_input_is_copied() -> None:
    backing = bytearray(b"xyz")
    s = DataStream()
    s.append(1, memoryview(backing))
    s.append(2, backing)
    backing[:] = b"000"
    assert s.buffer == b"xyzxyz"


def test_many_small_appends_are_not_quadratic() -> None:
    s = DataStream(max_bytes=10 << 20)
    t0 = time.perf_counter()
    for i in range(200_000):
        s.append(i, b"x")
        if i % 1000 == 0:
            len(s)
    assert s.buffer == b"x" * 200_000
    assert s.ts_at(199_999) == 199_999
    for _ in range(1000):  # consuming in small steps trims the timestamp index
        s.consume(100)
    assert len(s) == 100_000 and s.ts_at(0) == 100_000
    assert time.perf_counter() - t0 < 5.0


def test_overflow_drops_buffer_counts_and_flags_resync() -> None:
    s = DataStream(max_bytes=10)
    s.append(1, b"12345678")
    assert not s.needs_resync
    s.append(2, b"abc")  # 11 > 10: old data dropped, new chunk kept
    assert s.overflows == 1 and s.needs_resync
    assert s.buffer == b"abc" and s.ts_at(0) == 2
    s.append(3, b"x" * 11)  # larger than the cap on its own: dropped too
    assert s.overflows == 2 and len(s) == 0


def test_clear_drops_data_and_flags_resync() -> None:
    s = DataStream()
    s.append(1, b"abc")
    s.frames.append("pending")
    s.clear()
    assert len(s) == 0 and s.buffer == b"" and s.needs_resync
    assert s.ts_at(0) == 0
    assert list(s.frames) == ["pending"]  # parsed frames are the stitcher's business
    s.append(5, b"z")
    assert s.buffer == b"z" and s.ts_at(0) == 5


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.binary(max_size=20)),
            st.tuples(st.just("consume"), st.integers(min_value=0, max_value=30)),
            st.tuples(st.just("view"), st.just(0)),
        ),
        max_size=60,
    )
)
def test_matches_reference_model(ops: list[tuple[str, object]]) -> None:
    """Against a naive model: a bytes object plus the timestamp of every byte."""
    s = DataStream()
    data = b""
    stamps: list[int] = []
    for ts, (op, arg) in enumerate(ops):
        if op == "append":
            assert isinstance(arg, bytes)
            s.append(ts, arg)
            data += arg
            stamps += [ts] * len(arg)
        elif op == "consume":
            assert isinstance(arg, int)
            s.consume(arg)
            data, stamps = data[arg:], stamps[arg:]
        else:
            buf, start = s.view()
            assert buf[start:] == data
        assert len(s) == len(data)
        assert s.buffer == data
        for i in range(len(data)):
            assert s.ts_at(i) == stamps[i]
