"""Shared fixtures: a real embedded Vizier (eBPF, parsing, store, broker) in a child process,
loaded once per session (a BCC load costs seconds). See tests/vizier_proc.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.vizier_proc import ROOT, Vizier, VizierStartError, free_port, running_vizier, wait_until

__all__ = ["ROOT", "Vizier", "free_port", "wait_until"]


@pytest.fixture(scope="session")
def vizier(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vizier]:
    if os.geteuid() != 0:
        pytest.fail("the embedded Vizier loads eBPF and needs root: run the suite as root (./scripts/test.sh)")
    try:
        # the CPU profiler ships its counts every 2 s here (10 s by default), so tests wait less
        with running_vizier(tmp_path_factory.mktemp("vizier-state"), ["--conn-stats-period", "1"],
                            extra_env={"PXTUI_PROFILER_PERIOD_S": "2"}) as v:
            yield v
    except VizierStartError as e:
        pytest.fail(str(e))
