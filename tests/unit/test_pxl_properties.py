"""Property tests: vectorised kernels agree with a scalar reference of Pixie's C++ semantics."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from cluster.pxl.exec.grouping import group_ids
from cluster.pxl.funcs import REGISTRY, EvalContext, Signature
from cluster.pxl.funcs.upid import make_upid, upid_word

ints = st.integers(min_value=-(10**12), max_value=10**12)


def cpp_mod(a: int, b: int) -> int:
    """C++ a % b: the quotient truncates toward zero, so the sign follows the dividend."""
    q = abs(a) // abs(b)
    return a - (q if (a >= 0) == (b > 0) else -q) * b


def call(name: str, args: list, types: tuple[str, ...], ret: str):
    f = REGISTRY.scalar(name)
    arrays = [pa.array(a) for a in args]
    return f.impl(EvalContext(), arrays, Signature(types, ret), len(args[0])).to_pylist()


@given(st.lists(st.tuples(ints, ints.filter(lambda w: w != 0)), min_size=1, max_size=50))
def test_bin_and_modulo_match_cpp(pairs: list[tuple[int, int]]) -> None:
    xs, ws = [p[0] for p in pairs], [p[1] for p in pairs]
    mods = call("modulo", [xs, ws], ("INT64", "INT64"), "INT64")
    assert mods == [cpp_mod(x, w) for x, w in pairs]
    bins = call("bin", [xs, ws], ("INT64", "INT64"), "INT64")
    assert bins == [x - m for x, m in zip(xs, mods, strict=True)]


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                          st.integers(0, 2**64 - 1)), min_size=1, max_size=30))
def test_upid_words(parts: list[tuple[int, int, int]]) -> None:
    arr = pa.array([make_upid(a, p, s) for a, p, s in parts], pa.binary(16))
    assert upid_word(arr, 0).to_pylist() == [a for a, _, _ in parts]
    assert upid_word(arr, 1).to_pylist() == [p for _, p, _ in parts]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), max_size=60))
def test_group_ids_are_dense_and_consistent(rows: list[tuple[str, int]]) -> None:
    g = group_ids([pa.array([r[0] for r in rows]), pa.array([r[1] for r in rows])], len(rows))
    ids = g.gid.to_pylist()
    assert g.n_groups == len(set(rows))
    seen: dict[tuple[str, int], int] = {}
    for row, gid in zip(rows, ids, strict=True):
        assert seen.setdefault(row, gid) == gid
    assert sorted(set(ids)) == list(range(g.n_groups))
