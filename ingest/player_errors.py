"""Real players' own error codes, mapped to catalog codes (`ingest/player_error_codes.json`).

hls.js reports string details (`fragLoadError`), dash.js numeric codes (27), a bare
`<video>` its MediaError code. The web SDK bundles the same JSON at build time; the collector
uses `catalog_code` for CMCD `ec` values. One table, two readers.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

_FILE = "player_error_codes.json"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files("ingest").joinpath(_FILE).read_bytes())
    return data["players"]  # type: ignore[no-any-return]


def players() -> tuple[str, ...]:
    """The players the table knows (`hls.js`, `dash.js`, `video`)."""
    return tuple(_table())


def catalog_code(player: str, player_code: str | int) -> str | None:
    """The catalog code of a player's own error code (the player's default if unlisted).

    None when the player itself is unknown: the caller keeps the raw code then.
    """
    entry = _table().get(player)
    if entry is None:
        return None
    return str(entry["codes"].get(str(player_code), entry["default"]))
