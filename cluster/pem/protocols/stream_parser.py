"""The per-direction parser state every protocol keeps in ``DataStream.state``.

Why a base: each protocol's parser lives with its stream between syscalls, must be rebuilt when the
stream is reused with other settings (the role flips after inference, a body cap changes), and hands
its parse errors to the stitcher once. That bookkeeping was the same in every protocol; the parsing
is what differs.
"""

from __future__ import annotations

from typing import Any, Self

from cluster.pem.data_stream import DataStream


class StreamParser:
    __slots__ = ("_key", "errors")

    errors: int

    @classmethod
    def for_stream(cls, stream: DataStream, *key: Any) -> Self:
        """The stream's parser, made anew from ``key`` (the constructor's arguments) when the stream
        holds none, another protocol's, or one made with other arguments."""
        parser = stream.state
        if type(parser) is not cls or getattr(parser, "_key", None) != key:
            parser = stream.state = cls(*key)
            parser._key = key
        return parser

    def take_errors(self) -> int:
        """Parse errors since the last call (the stitcher adds them to the connection's count)."""
        errors, self.errors = self.errors, 0
        return errors
