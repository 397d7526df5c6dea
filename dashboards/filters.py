"""What the SRE narrowed the view to: a time range and dimension values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contract.dimensions import DIMENSIONS

_CUSTOM_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # as Settings.custom_dimensions checks


@dataclass(frozen=True)
class Filters:
    """Time range [start, end) plus, per dimension, the values to keep (empty = all)."""

    start: datetime | None = None
    end: datetime | None = None
    dims: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)
    # Custom dimensions (Settings.custom_dimensions), matched in the sessions' `dimensions`.
    custom: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)

    @classmethod
    def of(
        cls,
        start: datetime | None = None,
        end: datetime | None = None,
        **dims: list[str] | tuple[str, ...] | str,
    ) -> Filters:
        """Build filters from keyword dimensions, e.g. `Filters.of(isp=["ispA"])`."""
        pairs: list[tuple[str, tuple[str, ...]]] = []
        for name, values in sorted(dims.items()):
            if name not in DIMENSIONS:
                raise ValueError(f"unknown dimension {name!r}; one of {DIMENSIONS}")
            vals = (values,) if isinstance(values, str) else tuple(values)
            if vals:
                pairs.append((name, vals))
        return cls(start=start, end=end, dims=tuple(pairs))

    def with_custom(self, **values: list[str] | tuple[str, ...]) -> Filters:
        """The same filters narrowed by custom dimensions, e.g. `with_custom(experiment=["b"])`."""
        pairs = [(n, tuple(v)) for n, v in sorted(values.items()) if v]
        for name, _ in pairs:
            if not _CUSTOM_NAME.fullmatch(name):
                raise ValueError(f"bad custom dimension name {name!r}")
        return Filters(self.start, self.end, self.dims, tuple(pairs))

    def without(self, dimension: str) -> Filters:
        """The same filters minus one dimension (for ranking that dimension's values)."""
        dims = tuple(p for p in self.dims if p[0] != dimension)
        return Filters(self.start, self.end, dims, self.custom)

    def where(self, time_column: str, alias: str = "") -> tuple[str, list[Any]]:
        """A SQL condition and its parameters; dimension names are checked, values bound."""
        prefix = f"{alias}." if alias else ""
        parts: list[str] = ["true"]
        params: list[Any] = []
        if self.start is not None:
            parts.append(f"{prefix}{time_column} >= ?")
            params.append(self.start)
        if self.end is not None:
            parts.append(f"{prefix}{time_column} < ?")
            params.append(self.end)
        for name, values in self.dims:
            if name not in DIMENSIONS:  # dims is a plain field: re-check before splicing
                raise ValueError(f"unknown dimension {name!r}")
            parts.append(f"{prefix}{name} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        for name, values in self.custom:
            if not _CUSTOM_NAME.fullmatch(name):  # re-checked before splicing
                raise ValueError(f"bad custom dimension name {name!r}")
            holders = ", ".join("?" for _ in values)
            parts.append(f"json_extract_string({prefix}dimensions, '$.{name}') IN ({holders})")
            params.extend(values)
        return " AND ".join(parts), params
