"""Where the Vizier keeps its state on this host, and where it listens by default.

Server secrets (API key hashes) live in a root-only state directory; the client's own settings
live under the XDG config directory (pxtui/config.py).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ADDR = "127.0.0.1:51400"


def state_dir() -> Path:
    env = os.environ.get("PXTUI_STATE_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/lib/pxtui")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pxtui"


def ensure_state_dir() -> Path:
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    return d


def api_keys_file() -> Path:
    return state_dir() / "api_keys.json"


def pid_file() -> Path:
    return state_dir() / "vizier.pid"


def log_file() -> Path:
    return state_dir() / "vizier.log"


def addr_file() -> Path:
    return state_dir() / "vizier.addr"


def signing_key_file() -> Path:
    """The deployment's HS256 key for service JWTs (a mounted Secret in Kubernetes)."""
    env = os.environ.get("PXTUI_SIGNING_KEY_FILE")
    return Path(env) if env else state_dir() / "service_jwt.key"


def vizier_box_key_file() -> Path:
    """The Vizier's X25519 private key: clients seal their requests for its public half (0600)."""
    env = os.environ.get("PXTUI_VIZIER_BOX_KEY_FILE")
    return Path(env) if env else state_dir() / "vizier_x25519.key"
