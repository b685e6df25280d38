"""Run the live view on fake http_data, for looking at it in tmux:

    tmux new-session -d -s t -x 80 -y 24 '.venv/bin/python -m tests.tui.demo_app'
    tmux capture-pane -p -t t

PXTUI_DEMO_ROWS (default 200) rows to start, PXTUI_DEMO_GROW (default 5) new rows per refresh,
PXTUI_DEMO_FAIL_EVERY (default 0 = never): every Nth run raises a ScriptError.
"""

from __future__ import annotations

import os

from pxtui.app import PxApp
from pxtui.runner import ScriptError
from pxtui.scripts import find
from tests.tui.fakes import FakeRunner


class DemoRunner(FakeRunner):
    def __init__(self, fail_every: int, **kw: int) -> None:
        super().__init__(**kw)
        self.fail_every = fail_every

    def run(self, script, args):  # type: ignore[no-untyped-def]
        if self.fail_every and (self.calls + 1) % self.fail_every == 0:
            self.calls += 1
            raise ScriptError("L12 : C9  demo failure: column 'pod' not found in table")
        return super().run(script, args)


def main() -> None:
    runner = DemoRunner(
        fail_every=int(os.environ.get("PXTUI_DEMO_FAIL_EVERY", "0")),
        rows=int(os.environ.get("PXTUI_DEMO_ROWS", "200")),
        grow=int(os.environ.get("PXTUI_DEMO_GROW", "5")),
    )
    PxApp(runner, find("px/http_data"), {"start_time": "-5m"}, refresh_s=2.0).run()


if __name__ == "__main__":
    main()
