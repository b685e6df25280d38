"""Errors a PxL script can cause, each saying what went wrong and where.

Compile errors carry the script's line and column (1-based) so the CLI and TUI can print Pixie's
``L<line> : C<col>  <message>`` form; runtime errors name the operator that failed, because by then
the script's source positions are no longer in play.
"""

from __future__ import annotations


class PxlError(Exception):
    """One located compile error."""

    def __init__(self, message: str, line: int = 0, col: int = 0) -> None:
        self.message = message
        self.line = line
        self.col = col
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"L{self.line} : C{self.col}  {self.message}"


class PxlCompileError(Exception):
    """A script that did not compile; ``errors`` holds every located error found."""

    def __init__(self, errors: list[PxlError]) -> None:
        self.errors = list(errors)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class PxlRuntimeError(Exception):
    """A compiled query that failed while running; the message names the operator."""

    def __init__(self, operator: str, message: str) -> None:
        self.operator = operator
        self.message = message
        super().__init__(f"{operator}: {message}")


class PxlDeadlineError(PxlRuntimeError):
    """The query ran past its deadline: it stops at the next batch boundary of any operator, so a
    slow query frees its worker instead of running on after the client was told it failed."""
