"""The dead-letter record: what was rejected, why, and where it came from.

Every stage that rejects input (collector, stream validator, sinks) writes one of these to
`telemetry.deadletter.v1`, so nothing is ever silently lost and every rejection can be
replayed once fixed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field


class DeadLetter(BaseModel):
    """One rejected input with its original bytes and a machine-readable reason."""

    model_config = ConfigDict(frozen=True)

    reason: str = Field(description="Machine-readable reason code, e.g. 'schema_invalid'.")
    detail: str = Field(default="", description="Human-readable explanation.")
    source: str = Field(description="Stage that rejected it: collector, streams, sink.search...")
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    event_id: str | None = None
    original_b64: str = Field(description="The original bytes, base64-encoded.")
    rejected_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def of(cls, original: bytes, reason: str, source: str, **fields: object) -> DeadLetter:
        """Build a record from the raw bytes that were rejected."""
        return cls(
            original_b64=base64.b64encode(original).decode("ascii"),
            reason=reason,
            source=source,
            **fields,  # type: ignore[arg-type]
        )

    @property
    def original(self) -> bytes:
        """The rejected bytes, exactly as received."""
        return base64.b64decode(self.original_b64)
