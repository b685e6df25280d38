"""The client's settings: broker address and API key, from flags, then PXTUI_* variables, then the
config file under the XDG config directory (written by `pxtui up`, mode 0600)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cluster.paths import DEFAULT_ADDR


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "pxtui" / "config.json"


def load_file() -> dict[str, str]:
    p = config_path()
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"pxtui: cannot read {p}: {e}") from e
    return {k: str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def save_file(**values: str) -> Path:
    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    doc = load_file()
    doc.update(values)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    return p


@dataclass(frozen=True)
class ClientConfig:
    vizier: str
    api_key: str | None

    @classmethod
    def resolve(cls, vizier: str | None = None, api_key: str | None = None) -> ClientConfig:
        f = load_file()
        return cls(
            vizier=vizier or os.environ.get("PXTUI_VIZIER") or f.get("vizier") or DEFAULT_ADDR,
            api_key=api_key or os.environ.get("PXTUI_API_KEY") or f.get("api_key"),
        )
