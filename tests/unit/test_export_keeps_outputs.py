"""A failed px.export is reported, and the tables the script computed still reach the user."""

from __future__ import annotations

from pxtui.local_runner import LocalRunner
from pxtui.scripts import Script
from tests import datagen
from tests.vizier_proc import free_port

SCRIPT = """
import px
df = px.DataFrame(table='http_events', start_time='-5m')
df.window = px.bin(df.time_, px.seconds(60))
df = df.groupby(['window', 'req_path']).agg(n=('latency', px.count))
df.time_ = df.window
px.display(df, 'paths')
px.export(df, px.otel.Data(
    resource={'service.name': 'pxtui-test'},
    data=[px.otel.metric.Gauge(name='requests', value=df.n)],
    endpoint=px.otel.Endpoint(url='http://127.0.0.1:{port}', insecure=True, timeout=1),
))
"""


def test_failed_export_keeps_the_tables_and_warns(tmp_path):
    d = tmp_path / "rec"
    datagen.write(d, seed=3, rows=300)
    port = free_port()  # nothing listens there
    result = LocalRunner.open(d).run(Script("t", SCRIPT.replace("{port}", str(port))), {})
    [(name, table)] = result.tables
    assert name == "paths" and table.num_rows > 0
    assert len(result.warnings) == 1 and f"127.0.0.1:{port}" in result.warnings[0]
