"""The playback error catalog: every code a player may emit, what it means, what to do.

The data lives in `error_catalog.json` next to this module (shipped as package data). The
platform stub draws injected faults from it, the stream validator can check codes against it
and the support console shows `meaning` and `agent_action` to agents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

Category = Literal["network", "drm", "cdn", "manifest", "decoder", "entitlement", "device"]
CATEGORIES: tuple[str, ...] = Category.__args__  # type: ignore[attr-defined]
CatalogSeverity = Literal["fatal", "warning"]

_CATALOG_FILE = "error_catalog.json"


class ErrorCode(BaseModel):
    """One playback error code and how support should read it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Annotated[str, Field(pattern=r"^[A-Z]{2,4}-\d{4}$", max_length=64)]
    title: Annotated[str, Field(min_length=1, max_length=80)]
    category: Category
    severity: CatalogSeverity
    base_failure: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")] = Field(
        description="The underlying failure this code models (fault scenarios group by it)."
    )
    http_status: Annotated[int, Field(ge=100, le=599)] | None = Field(
        default=None, description="Typical HTTP status behind the error, when there is one."
    )
    meaning: Annotated[str, Field(min_length=1)]
    agent_action: Annotated[str, Field(min_length=1)]

    @property
    def is_fatal(self) -> bool:
        """Whether this error ends the playback session."""
        return self.severity == "fatal"


class ErrorCatalog(BaseModel):
    """All error codes, looked up by code, category or base failure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    catalog_version: Annotated[int, Field(ge=1)]
    description: str = ""
    errors: tuple[ErrorCode, ...]
    _index: dict[str, ErrorCode] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _codes_are_unique(self) -> ErrorCatalog:
        index: dict[str, ErrorCode] = {}
        for entry in self.errors:
            if entry.code in index:
                raise ValueError(f"duplicate error code {entry.code}")
            index[entry.code] = entry
        # Looked up per error event downstream, so the code index is built once.
        self._index = index
        return self

    def get(self, code: str) -> ErrorCode | None:
        """The entry for `code`, or None when the catalog does not know it."""
        return self._index.get(code)

    def __getitem__(self, code: str) -> ErrorCode:
        entry = self.get(code)
        if entry is None:
            raise KeyError(code)
        return entry

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._index

    def __iter__(self) -> Iterator[ErrorCode]:  # type: ignore[override]
        # Iterating the catalog yields its entries (not pydantic's field pairs).
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)

    @property
    def codes(self) -> tuple[str, ...]:
        """Every code, in catalog order."""
        return tuple(e.code for e in self.errors)

    def by_category(self, category: str) -> tuple[ErrorCode, ...]:
        """Entries of one category (network, drm, cdn, ...), in catalog order."""
        return tuple(e for e in self.errors if e.category == category)

    def by_severity(self, severity: str) -> tuple[ErrorCode, ...]:
        """Entries of one severity (fatal or warning), in catalog order."""
        return tuple(e for e in self.errors if e.severity == severity)

    def by_base_failure(self, base_failure: str) -> tuple[ErrorCode, ...]:
        """Entries that model one underlying failure (e.g. 'oca_unreachable')."""
        return tuple(e for e in self.errors if e.base_failure == base_failure)

    @property
    def base_failures(self) -> tuple[str, ...]:
        """Every distinct base failure, in first-seen order."""
        return tuple(dict.fromkeys(e.base_failure for e in self.errors))


def parse_catalog(text: str | bytes) -> ErrorCatalog:
    """Validate catalog JSON text (raises pydantic.ValidationError when malformed)."""
    return ErrorCatalog.model_validate(json.loads(text))


def load_catalog_file(path: Path) -> ErrorCatalog:
    """Load a catalog from an explicit file (e.g. a site-specific catalog)."""
    return parse_catalog(path.read_bytes())


@lru_cache(maxsize=1)
def load_catalog() -> ErrorCatalog:
    """The catalog shipped with streamwatch (read once per process)."""
    text = resources.files("ingest").joinpath(_CATALOG_FILE).read_bytes()
    return parse_catalog(text)
