"""The embedded default: every role (PEM, Kelvin, query broker, metadata) in one process on this host.

`pxtui up` starts this module in the background; `--foreground` runs it attached. It is
cluster.vizier.server with a PEM in the same process (see there).
"""

from __future__ import annotations

import sys

from cluster.vizier.server import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, embedded_default=True)


if __name__ == "__main__":
    sys.exit(main())
