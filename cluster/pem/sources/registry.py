"""Every source connector the PEM runs next to the socket tracer, by name.

A factory per name (not instances) so each PEM gets fresh state, and `pxtui agent --connectors`
(or PemConfig.connectors) can pick a subset; each factory takes the PemConfig.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cluster.pem.sources.connector import SourceConnector

Factory = Callable[[Any], SourceConnector]

#: name -> factory(config); helpers register their connector here (one line each)
CONNECTORS: dict[str, Factory] = {}


def build(names: tuple[str, ...] | None, config: Any) -> list[SourceConnector]:
    """The connectors asked for (None = all), in registry order; an unknown name is an error."""
    if names is None:
        names = tuple(CONNECTORS)
    unknown = [n for n in names if n not in CONNECTORS]
    if unknown:
        raise ValueError(f"unknown source connector(s) {', '.join(unknown)}; known: {', '.join(CONNECTORS)}")
    return [CONNECTORS[n](config) for n in names]
