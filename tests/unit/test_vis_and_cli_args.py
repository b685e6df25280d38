import json

import pytest

from cluster.pxl.vis import VisError, parse_vis
from pxtui.cli import parse_script_args
from pxtui.scripts import ScriptNotFound, bundled, find, load_path

VIS = json.dumps({
    "variables": [
        {"name": "start_time", "type": "PX_STRING", "defaultValue": "-5m"},
        {"name": "pod", "type": "PX_POD"},
        {"name": "groupby", "type": "PX_STRING", "defaultValue": {"value": "node"}, "validValues": ["node", "pod"]},
    ],
    "globalFuncs": [{"outputName": "out", "func": {"name": "f", "args": [
        {"name": "start", "variable": "start_time"}, {"name": "p", "variable": "pod"},
        {"name": "lit", "value": "x"}]}}],
    "widgets": [
        {"name": "t", "globalFuncOutputName": "out", "position": {"x": 0, "y": 0, "w": 12, "h": 4},
         "displaySpec": {"@type": "types.px.dev/px.vispb.Table"}},
        {"name": "inline", "func": {"name": "g", "args": []},
         "displaySpec": {"@type": "types.px.dev/px.vispb.TimeseriesChart", "timeseries": []}},
    ],
})


def test_vis_binds_variables_defaults_and_literals():
    vis = parse_vis(VIS)
    calls = vis.funcs_to_execute({"pod": "ns/p"})
    assert [(c.name, c.output_name) for c in calls] == [("f", "out"), ("g", "inline")]
    assert calls[0].args == {"start": "-5m", "p": "ns/p", "lit": "x"}
    assert [w.type for w in vis.widgets] == ["Table", "TimeseriesChart"]


def test_vis_errors_name_the_problem():
    vis = parse_vis(VIS)
    with pytest.raises(VisError, match="Missing required argument"):
        vis.funcs_to_execute({})
    with pytest.raises(VisError, match="unknown argument"):
        vis.funcs_to_execute({"pod": "a", "nope": "1"})
    with pytest.raises(VisError, match="not one of"):
        vis.funcs_to_execute({"pod": "a", "groupby": "service"})
    with pytest.raises(VisError, match="line 1 column"):
        parse_vis("{nope")


def test_script_args_take_pixies_three_spellings():
    assert parse_script_args(("--a=1", "--b", "2", "-c", "3", "--d=")) == {"a": "1", "b": "2", "c": "3", "d": ""}
    with pytest.raises(SystemExit) as e:
        parse_script_args(("--a",))
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        parse_script_args(("stray",))


def test_bundled_scripts_load_with_vis_and_manifest(tmp_path):
    scripts = bundled()
    assert "px/http_data" in scripts
    s = find("px/http_data")
    assert s.short and not s.vis.empty
    with pytest.raises(ScriptNotFound, match="px/http_data"):
        find("px/nope")
    with pytest.raises(ScriptNotFound):
        find("../etc")
    f = tmp_path / "x.pxl"
    f.write_text("import px\n")
    plain = load_path(f)
    assert plain.vis.empty and plain.funcs_to_execute({}) is None
    with pytest.raises(VisError, match="takes no arguments"):
        plain.funcs_to_execute({"a": "1"})
    assert [c.name for c in s.funcs_to_execute({})] == ["http_data"]
