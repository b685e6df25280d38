"""The layered service map: layout properties (ranks, crossings, fit, arrowheads, cycles) on the
pure layout, and the widget in the app on the demo's shape and on a 15-service graph (UI tests
over fake RequestGraph rows; snapshots in snapshots/test_service_graph/)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest

from cluster.schemas import col
from pxtui.app import PxApp
from pxtui.runner import ScriptResult
from pxtui.widgets.graph_layout import ASCII_LIGHT, LIGHT, Drawing, draw_graph, layer_graph
from pxtui.widgets.service_graph import ServiceGraph
from tests.tui.fakes import FakeRunner
from tests.tui.screen import non_ascii_drawing, screen_text
from tests.tui.widget_data import make_widget_app, widget_script

DEMO = [("loadgen", "frontend"), ("frontend", "catalog"), ("frontend", "cart"), ("cart", "redis")]
FIFTEEN = [
    ("loadgen", "frontend"),
    ("frontend", "catalog"),
    ("frontend", "cart"),
    ("frontend", "checkout"),
    ("frontend", "ads"),
    ("frontend", "recommend"),
    ("frontend", "currency"),
    ("frontend", "auth"),
    ("cart", "redis"),
    ("checkout", "payment"),
    ("checkout", "email"),
    ("checkout", "shipping"),
    ("checkout", "currency"),
    ("checkout", "cart"),
    ("recommend", "catalog"),
    ("auth", "postgres"),
    ("payment", "kafka"),
    ("email", "kafka"),
    ("catalog", "postgres"),
]


def _draw(edges: list[tuple[str, str]], width: int = 76, lines=LIGHT) -> Drawing:  # type: ignore[no-untyped-def]
    nodes = sorted({n for e in edges for n in e})
    return draw_graph(nodes, edges, width, lines)


def _arrowheads_touch_their_targets(d: Drawing, edges: list[tuple[str, str]], flipped: set[int]) -> None:
    for i, (src, dst) in enumerate(edges):
        if src == dst:
            continue
        row, x = d.arrows[i]
        lo, hi = d.node_cols[dst]
        assert lo <= x < hi, (src, dst, "arrowhead not over/under its target")
        expected = d.node_rows[dst] + (1 if i in flipped else -1)
        assert row == expected, (src, dst, row, expected)


def test_demo_shape_ranks_callers_above_callees_without_crossings() -> None:
    nodes = sorted({n for e in DEMO for n in e})
    lay = layer_graph(nodes, DEMO)
    assert lay.crossings() == 0 and not lay.flipped
    d = draw_graph(nodes, DEMO, 76, LIGHT, layering=lay)
    r = d.node_rows
    assert r["loadgen"] < r["frontend"] < r["catalog"] == r["cart"] < r["redis"]
    assert d.width <= 76 and d.height <= 10  # fits an 80x24 panel with room for the edge list
    _arrowheads_touch_their_targets(d, DEMO, lay.flipped)
    assert d.text().count("▼") == len(DEMO)


def test_ordering_removes_a_crossing_the_input_order_has() -> None:
    edges = [("a", "y"), ("b", "x")]  # layer 2 starts as [x, y] (input order): the two edges cross
    lay = layer_graph(["a", "b", "x", "y"], edges)
    assert lay.crossings() == 0


def test_fifteen_services_fit_80_columns_with_few_crossings() -> None:
    edges = [(f"default/{a}", f"default/{b}") for a, b in FIFTEEN]
    nodes = sorted({n for e in edges for n in e})
    lay = layer_graph(nodes, edges)
    assert lay.crossings() <= 5  # the input order has 32; grandalf's sweeps alone leave 7
    d = draw_graph(nodes, edges, 76, LIGHT, layering=lay)
    assert d.width <= 76
    assert d.stripped == "default/"  # the shared namespace goes before any name is cut
    for n in nodes:
        assert n.removeprefix("default/") in d.text(), n
    _arrowheads_touch_their_targets(d, edges, lay.flipped)
    wide = draw_graph(nodes, edges, 156, LIGHT, layering=lay)
    assert wide.stripped == "" and all(n in wide.text() for n in nodes)  # at 160 columns: full names


def test_cycles_and_self_calls_are_drawn() -> None:
    edges = [("a", "b"), ("b", "c"), ("c", "a"), ("a", "a"), ("x", "y"), ("y", "x")]
    nodes = sorted({n for e in edges for n in e})
    lay = layer_graph(nodes, edges)
    assert len(lay.flipped) == 2  # c -> a and y -> x close cycles: drawn upward
    d = draw_graph(nodes, edges, 76, LIGHT, layering=lay)
    assert "▲" in d.text() and "a ↺" in d.text()
    _arrowheads_touch_their_targets(d, edges, lay.flipped)


def test_ascii_lines_use_no_box_drawing() -> None:
    d = _draw(FIFTEEN, lines=ASCII_LIGHT)
    assert non_ascii_drawing(d.text()) == set() and "v" in d.text()


def test_same_data_same_drawing() -> None:
    assert _draw(FIFTEEN).text() == _draw(list(FIFTEEN)).text()


def test_layout_of_fifteen_services_is_fast() -> None:
    t0 = time.perf_counter()
    for _ in range(10):
        _draw(FIFTEEN)
    assert (time.perf_counter() - t0) / 10 < 0.05  # it runs on the event loop when data changes


# ------------------------------------------------------------------------------ in the app

MS = 1_000_000


def request_graph_rows(edges: list[tuple[str, str]]) -> pa.Table:
    """px/namespace-shaped service graph rows for `edges` (test data; latency grows along the list)."""
    n = len(edges)
    schema = pa.schema(
        [
            col("requestor_pod", pa.string()),
            col("responder_pod", pa.string()),
            col("requestor_service", pa.string()),
            col("responder_service", pa.string()),
            col("requestor_ip", pa.string()),
            col("responder_ip", pa.string()),
            col("latency_p50", pa.float64(), "ST_DURATION_NS"),
            col("latency_p90", pa.float64(), "ST_DURATION_NS"),
            col("latency_p99", pa.float64(), "ST_DURATION_NS"),
            col("error_rate", pa.float64(), "ST_PERCENT"),
            col("request_throughput", pa.float64()),
            col("inbound_throughput", pa.float64(), "ST_BYTES"),
            col("outbound_throughput", pa.float64(), "ST_BYTES"),
            col("throughput_total", pa.int64()),
        ]
    )
    return pa.table(
        {
            "requestor_pod": [f"default/{a}-1" for a, _ in edges],
            "responder_pod": [f"default/{b}-1" for _, b in edges],
            "requestor_service": [f"default/{a}" for a, _ in edges],
            "responder_service": [f"default/{b}" for _, b in edges],
            "requestor_ip": [f"10.0.0.{i}" for i in range(n)],
            "responder_ip": [f"10.0.1.{i}" for i in range(n)],
            "latency_p50": [(i + 1) * 1.5 * MS for i in range(n)],
            "latency_p90": [(i + 1) * 3.0 * MS for i in range(n)],
            "latency_p99": [(i + 1) * 9.0 * MS for i in range(n)],
            "error_rate": [[0.0, 0.0, 0.02, 0.0, 0.08][i % 5] for i in range(n)],
            "request_throughput": [5.0 * (i + 1) for i in range(n)],
            "inbound_throughput": [512.0 * (i + 1) for i in range(n)],
            "outbound_throughput": [1024.0 * (i + 1) for i in range(n)],
            "throughput_total": [300 * (i + 1) for i in range(n)],
        },
        schema=schema,
    )


def graph_app(edges: list[tuple[str, str]], tmp_path: Path | None = None) -> PxApp:
    table = request_graph_rows(edges)
    runner = FakeRunner(produce=lambda _n: ScriptResult(tables=[("svc_graph", table)]))
    return make_widget_app(widget_script("RequestGraph"), tmp_path, runner=runner)


async def _first_run(pilot) -> None:  # type: ignore[no-untyped-def]
    app = pilot.app
    for _ in range(500):
        if app.run_count >= 1:
            break
        await pilot.pause(0.01)
    await pilot.pause(0.2)


async def test_demo_graph_in_the_app_at_80x24(tmp_path: Path) -> None:
    app = graph_app(DEMO, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _first_run(pilot)
        graph = app.query_one(ServiceGraph)
        lines = screen_text(app).splitlines()
        row = {
            n: next(i for i, ln in enumerate(lines) if f" default/{n} " in ln)
            for n in ("loadgen", "frontend", "cart", "redis")
        }
        assert row["loadgen"] < row["frontend"] < row["cart"] < row["redis"]
        listed = [ln for ln in lines if "▶" in ln]
        assert len(listed) == 4 and " ! " in next(ln for ln in listed if "▶ cart" in ln)  # 2 % errors
        assert "1.5 ms" in "\n".join(lines[row["loadgen"] : row["frontend"]])  # p50 beside the arrowhead
        assert graph.selected_edge is not None and graph.selected_edge.src == "default/loadgen"
        await pilot.press("j")
        assert graph.selected_edge.src == "default/frontend"  # a bent edge: it has runs to draw heavy
        assert "━" in screen_text(app)
        await pilot.press("j", "j")
        assert graph.selected_edge.dst == "default/redis"


async def test_fifteen_service_graph_scrolls_to_the_selected_edge_at_80x24(tmp_path: Path) -> None:
    app = graph_app(FIFTEEN, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await _first_run(pilot)
        graph = app.query_one(ServiceGraph)
        assert "loadgen" in screen_text(app) and graph.top == 0  # the map's top first
        for _ in range(len(FIFTEEN) - 1):
            await pilot.press("j")
        last = graph.selected_edge
        assert last is not None
        shown = [ln for ln in screen_text(app).splitlines() if "▶" in ln]
        assert any(
            f"{last.src.removeprefix('default/')} " in ln and f"▶ {last.dst.removeprefix('default/')}" in ln
            for ln in shown
        )


SIZES = [(80, 24), (160, 48)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("shape", ["demo", "fifteen"])
def test_service_graph_snapshot(snap_compare, shape: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    edges = DEMO if shape == "demo" else FIFTEEN
    assert snap_compare(graph_app(edges), terminal_size=size, run_before=_first_run)
