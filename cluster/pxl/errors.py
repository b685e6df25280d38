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


class PxlResourceError(PxlRuntimeError):
    """The query needed more memory than its budget on one executor (a PEM or Kelvin)."""


class MemoryBudget:
    """Bytes a query may materialise on one executor.

    Why materialised bytes: every table an operator builds whole (aggregate inputs, join sides,
    unions, sink outputs, the batches Kelvin receives) passes through one place, so the sum of their
    sizes bounds what the query holds at once from above; streaming batches that are dropped at once
    are not counted. Exceeding it stops the query, never the process, and says where.
    """

    def __init__(self, limit_bytes: int, executor: str) -> None:
        self.limit_bytes = limit_bytes
        self.executor = executor
        self.used_bytes = 0

    def charge(self, nbytes: int, operator: str) -> None:
        self.used_bytes += nbytes
        if self.used_bytes > self.limit_bytes:
            raise PxlResourceError(
                f"{operator} operator",
                f"the query needs more than its memory budget of {_mib(self.limit_bytes)} on {self.executor} "
                f"({_mib(self.used_bytes)} materialised so far); narrow the time window, filter earlier, "
                "or raise the budget",
            )


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
