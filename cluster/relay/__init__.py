"""A passthrough relay between clients and a Vizier, the counterpart of Pixie Cloud's proxy."""

from cluster.relay.proxy import Relay, RelayError

__all__ = ["Relay", "RelayError"]
