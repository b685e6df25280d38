"""Snapshot tests keep their SVGs in /work/main/snapshots/ (the repository's snapshots/ folder),
not in syrupy's default __snapshots__ beside each test file."""

from __future__ import annotations

from pathlib import Path

import pytest

SNAPSHOT_DIR = Path(__file__).resolve().parents[2] / "snapshots"

try:
    import pytest_textual_snapshot
except ImportError:  # the dev extra is not installed: snapshot tests fail on their missing fixture
    pytest_textual_snapshot = None


if pytest_textual_snapshot is not None:

    class RepoSnapshots(pytest_textual_snapshot.SVGImageExtension):
        """One SVG per test in snapshots/<test module>/."""

        @classmethod
        def dirname(cls, *, test_location) -> str:  # type: ignore[no-untyped-def]
            return str(SNAPSHOT_DIR / test_location.basename)

    @pytest.fixture(autouse=True)
    def _snapshots_in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pytest_textual_snapshot, "SVGImageExtension", RepoSnapshots)
