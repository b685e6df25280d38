"""Request-path clustering (_build_request_path_clusters, _predict_request_path_cluster,
_match_endpoint), the sample UDA, px.vis / px.plugin, and the builtins refused with a reason, against
hand-computed expectations.  The request paths are test data made up for these checks."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from cluster import schemas
from cluster.pxl import PxlCompileError
from cluster.pxl.funcs.request_paths import Clustering, build_clustering, looks_like_id, match_endpoint
from tests.unit.test_pxl_support import DEFAULT_ROWS, http_events, one, run, small_table

UUID = "9f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8"


def test_id_like_segments() -> None:
    for seg in ("123", "0", UUID, "deadbeef01", "a1b2c3d4e5f6a7b8c9d0", "AbCdEf0123456789xyz"):
        assert looks_like_id(seg), seg
    for seg in ("users", "v1", "orders", "deadbeef", "abc-def", "healthz"):
        assert not looks_like_id(seg), seg


def test_clustering_templates_ids_and_keeps_literals() -> None:
    paths = ["/users/123/orders/" + UUID, "/users/77/orders/aa01bb02cc", "/users/5/profile",
             "/healthz", "/healthz?verbose=1", "/api/v1/items/42", "//api//v1/items/7/"]
    assert build_clustering(paths) == {"version": 1, "templates": [
        "/api/v1/items/*", "/healthz", "/users/*/orders/*", "/users/*/profile"]}


def test_high_cardinality_position_becomes_wildcard() -> None:
    # 11 distinct user names under /u/<name>/settings: more than MAX_LITERALS (10) -> '*'
    names = [f"name{c}" for c in "abcdefghijk"]
    got = build_clustering([f"/u/{n}/settings" for n in names] + ["/v/x", "/v/y"])
    assert got["templates"] == ["/u/*/settings", "/v/x", "/v/y"]
    # 10 distinct names stay literal
    got = build_clustering([f"/u/{n}/settings" for n in names[:10]])
    assert len(got["templates"]) == 10


def test_predict_prefers_most_specific_template_and_falls_back_to_ids() -> None:
    c = Clustering(json.dumps({"version": 1, "templates": ["/users/*/orders/*", "/users/*/orders/latest",
                                                           "/users/*"]}))
    assert c.predict("/users/123/orders/" + UUID) == "/users/*/orders/*"
    assert c.predict("/users/9/orders/latest?x=1") == "/users/*/orders/latest"
    assert c.predict("/users/bob") == "/users/*"
    assert c.predict("/other/55/thing") == "/other/*/thing"  # no template: its own id template
    assert Clustering("not json").predict("/a/1") == "/a/*"


def test_match_endpoint() -> None:
    assert match_endpoint("/users/123/orders/" + UUID, "/users/*/orders/*")
    assert match_endpoint("/users/1/orders/2?q=3", "/users/*/orders/*")
    assert not match_endpoint("/users/1/orders", "/users/*/orders/*")
    assert not match_endpoint("/users/1/items/2", "/users/*/orders/*")
    assert match_endpoint("/", "/")


def _http_with_paths(paths: list[str], services: list[str]) -> pa.Table:
    t = http_events(len(paths))
    i = t.schema.get_field_index("req_path")
    t = t.set_column(i, t.schema.field(i), pa.array(paths, pa.string()))
    j = t.schema.get_field_index("req_headers")
    return t.set_column(j, t.schema.field(j), pa.array(services, pa.string()))


def test_end_to_end_script_like_pixie_endpoint_clustering() -> None:
    paths = ["/users/1/orders/11", "/users/2/orders/22", "/users/3", "/cart", "/users/4/orders/ff00aa11",
             "/cart"]
    svcs = ["s1", "s1", "s1", "s1", "s2", "s2"]
    src = """import px
df = px.DataFrame('http_events')
df.svc = df.req_headers
clusters = df.groupby('svc').agg(clustering=('req_path', px._build_request_path_clusters))
df = df.merge(clusters, how='inner', left_on='svc', right_on='svc', suffixes=['', '_c'])
df.endpoint = px._predict_request_path_cluster(df.req_path, df.clustering)
df.is_orders = px._match_endpoint(df.req_path, '/users/*/orders/*')
per = df.groupby(['svc', 'endpoint']).agg(n=('latency', px.count), hit=('is_orders', px.sum))
px.display(per)
px.display(clusters, 'clusters')
"""
    out = run(src, tables={"http_events": _http_with_paths(paths, svcs), "small": small_table(DEFAULT_ROWS)})
    rows = sorted(zip(*(out["output"].column(c).to_pylist() for c in ("svc", "endpoint", "n", "hit")),
                      strict=True))
    assert rows == [("s1", "/cart", 1, 0), ("s1", "/users/*", 1, 0), ("s1", "/users/*/orders/*", 2, 2),
                    ("s2", "/cart", 1, 0), ("s2", "/users/*/orders/*", 1, 1)]
    by_svc = dict(zip(out["clusters"].column("svc").to_pylist(),
                      map(json.loads, out["clusters"].column("clustering").to_pylist()), strict=True))
    assert by_svc["s2"] == {"version": 1, "templates": ["/cart", "/users/*/orders/*"]}


def test_sample_is_first_value_per_group() -> None:
    t = one("import px\ndf = px.DataFrame('small')\n"
            "df = df.groupby('svc').agg(n=('n', px.sample), x=('x', px.sample), b=('bytes', px.sample))\n"
            "px.display(df)\n")
    got = {r["svc"]: (r["n"], r["x"], r["b"]) for r in t.to_pylist()}
    assert got == {"a": (1, 1.5, 100), "b": (-7, -2.25, 200), "c": (4, 4.0, 400)}
    assert schemas.semantic_type(t.schema.field("b")) == "ST_BYTES"


def test_sample_over_no_rows_gives_the_zero_row() -> None:
    t = one("import px\ndf = px.DataFrame('small')\ndf = df[df.n > 100]\n"
            "df = df.agg(s=('svc', px.sample))\npx.display(df)\n")
    assert t.column("s").to_pylist() == [""]


def _compile_error(src: str) -> str:
    with pytest.raises(PxlCompileError) as info:
        run(src)
    return str(info.value)


def test_plugin_times_without_config_are_pixies_error() -> None:
    for attr in ("start_time", "end_time"):
        msg = _compile_error(f"import px\nt = px.plugin.{attr}\n")
        assert msg == "L2 : C5  No plugin config found. Make sure the script is run in a plugin context."


def test_vis_vega_decorator_is_accepted_and_changes_nothing() -> None:
    src = ("import px\n@px.vis.vega('{\"mark\": \"bar\"}')\ndef f():\n    return px.DataFrame('small')\n"
           "px.display(f())\n")
    assert one(src).num_rows == len(DEFAULT_ROWS)
    assert "string literal" in _compile_error("import px\n@px.vis.vega(1)\ndef f():\n    return 1\n")
    two = "import px\n@px.vis.vega('{}')\n@px.vis.vega('{}')\ndef f():\n    return 1\n"
    assert "at most one decorator" in _compile_error(two)


def test_refused_builtins_say_why() -> None:
    assert "tcmalloc" in _compile_error("import px\ndf = px._HeapGrowthStacks(-1)\n")
    msg = _compile_error("import px\ndf = px.DataFrame('small')\n"
                         "df = df.agg(p=('svc', px.pprof))\npx.display(df)\n")
    assert "px.pprof is not available in pxtui" in msg
