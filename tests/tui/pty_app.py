"""The live view on fake data, for tests that need a real terminal (a pty): `python -m
tests.tui.pty_app [crash]`. With `crash`, the `x` key raises inside an action, standing in for
any bug in a handler. UI test helper."""

from __future__ import annotations

import sys

from textual.binding import Binding

from pxtui.app import PxApp
from tests.tui.widget_data import dashboard_script, widget_runner


class CrashingApp(PxApp):
    BINDINGS = [Binding("x", "crash", "Crash")]  # noqa: RUF012

    def action_crash(self) -> None:
        raise RuntimeError("deliberate crash for the terminal-restore test")


def main() -> None:
    cls = CrashingApp if sys.argv[1:] == ["crash"] else PxApp
    app = cls(widget_runner(), dashboard_script(), {}, refresh_s=0.5)
    app.run()
    sys.exit(app.return_code or 0)


if __name__ == "__main__":
    main()
