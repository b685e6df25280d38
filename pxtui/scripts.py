"""Script bundles: a directory per script holding one .pxl, an optional vis.json and manifest.yaml.

The same shape as Pixie's bundles, so a directory copied from Pixie's repository runs as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from cluster.pxl.vis import FuncToExecute, Vis, VisError, parse_vis

BUNDLE_DIR = Path(__file__).resolve().parent.parent / "pxl_scripts"


class ScriptNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Script:
    id: str
    pxl: str
    vis_text: str | None = None
    short: str = ""
    long: str = ""
    path: Path | None = field(default=None, compare=False)

    @cached_property
    def vis(self) -> Vis:
        return parse_vis(self.vis_text)

    def funcs_to_execute(self, args: dict[str, str]) -> list[FuncToExecute] | None:
        """The calls to make for these arguments: None means script mode (no vis.json), which takes
        no arguments. Raises VisError for unknown, missing or invalid arguments."""
        if self.vis.empty:
            if args:
                raise VisError(f"{self.id} has no vis.json, so it takes no arguments (got {', '.join(args)})")
            return None
        return self.vis.funcs_to_execute(args)

    def with_source(self, pxl: str) -> Script:
        """The same script with edited PxL (the TUI's editor), keeping its vis."""
        return Script(self.id, pxl, self.vis_text, self.short, self.long, self.path)


def load_dir(path: Path, script_id: str | None = None) -> Script:
    pxls = sorted(path.glob("*.pxl"))
    if len(pxls) != 1:
        raise ScriptNotFound(f"{path}: a script directory holds exactly one .pxl file, found {len(pxls)}")
    vis = path / "vis.json"
    manifest: dict = {}
    mf = path / "manifest.yaml"
    if mf.exists():
        loaded = yaml.safe_load(mf.read_text())
        manifest = loaded if isinstance(loaded, dict) else {}
    return Script(
        id=script_id or path.name,
        pxl=pxls[0].read_text(),
        vis_text=vis.read_text() if vis.exists() else None,
        short=str(manifest.get("short", "")).strip(),
        long=str(manifest.get("long", "")).strip(),
        path=path,
    )


def load_path(path: str | Path) -> Script:
    """`-f PATH`: a .pxl file (script mode, no vis) or a directory with one .pxl and vis.json."""
    p = Path(path)
    if p.is_dir():
        return load_dir(p, script_id=str(p))
    if not p.exists():
        raise ScriptNotFound(f"{p}: no such file")
    return Script(id=str(p), pxl=p.read_text(), path=p)


def bundled(root: Path = BUNDLE_DIR) -> dict[str, Script]:
    scripts = {}
    for pxl in sorted(root.glob("*/*/*.pxl")):
        sid = str(pxl.parent.relative_to(root))
        scripts[sid] = load_dir(pxl.parent, sid)
    return scripts


def find(script_id: str, root: Path = BUNDLE_DIR) -> Script:
    d = root / script_id
    if not d.is_dir() or ".." in Path(script_id).parts:
        known = ", ".join(sorted(bundled(root))) or "none"
        raise ScriptNotFound(f"no bundled script {script_id!r}; bundled scripts: {known}")
    return load_dir(d, script_id)
