"""The CLI's credentials: flags, then environment (`MLSP_URL`, `MLSP_API_KEY`), then the config
file written by `mlsp login` (`$MLSP_CONFIG`, else `$XDG_CONFIG_HOME/mlsp/config.json`, else
`~/.config/mlsp/config.json`; mode 0600, since it holds an API key)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mlsp.client import Client

DEFAULT_URL = "http://127.0.0.1:8000"


def config_path() -> Path:
    """Where `mlsp login` stores the server URL and the API key."""
    if override := os.environ.get("MLSP_CONFIG"):
        return Path(override).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "mlsp" / "config.json"


def load(path: Path) -> dict[str, Any]:
    """The stored settings ({} when there are none yet)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def save(path: Path, data: dict[str, Any]) -> None:
    """Write the settings readable by the owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)  # an older tmp file may have had other bits
    os.replace(tmp, path)


@dataclass
class State:
    """What every command shares: server, credentials, output mode."""

    url: str | None = None
    api_key: str | None = None
    json: bool = False
    path: Path = field(default_factory=config_path)

    def stored(self) -> dict[str, Any]:
        return load(self.path)

    def server(self) -> str:
        return self.url or self.stored().get("url") or DEFAULT_URL

    def client(self) -> Client:
        """An API-key client; a usage error when there are no credentials at all."""
        key = self.api_key or self.stored().get("api_key")
        if not key:
            raise click.UsageError("Not logged in: run `mlsp login` or set MLSP_API_KEY.")
        return Client(self.server(), api_key=key)

    def anonymous(self) -> Client:
        return Client(self.server())
