"""The dead-letter record: what was rejected, why, and where it came from.

Every stage that rejects input (collector, stream validator, sinks) writes one of these to
`telemetry.deadletter.v1`, so nothing is ever silently lost and every rejection can be
replayed once fixed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

# Reason codes: machine-readable and stable (dashboards count dead letters by them).

EVENT_TOO_LARGE: Final = "event_too_large"
INVALID_JSON: Final = "invalid_json"
INVALID_UTF8: Final = "invalid_utf8"
NOT_AN_OBJECT: Final = "not_an_object"
UNKNOWN_EVENT_TYPE: Final = "unknown_event_type"
UNSUPPORTED_SCHEMA_VERSION: Final = "unsupported_schema_version"
SCHEMA_INVALID: Final = "schema_invalid"
UNPROCESSABLE: Final = "unprocessable"

EMPTY_BODY: Final = "empty_body"
TOO_MANY_EVENTS: Final = "too_many_events"
BODY_TOO_LARGE: Final = "body_too_large"
NESTING_TOO_DEEP: Final = "nesting_too_deep"

EVENT_REASONS: Final = (
    EVENT_TOO_LARGE,
    INVALID_JSON,
    INVALID_UTF8,
    NOT_AN_OBJECT,
    UNKNOWN_EVENT_TYPE,
    UNSUPPORTED_SCHEMA_VERSION,
    SCHEMA_INVALID,
    UNPROCESSABLE,
)
BATCH_REASONS: Final = (
    EMPTY_BODY,
    INVALID_JSON,
    INVALID_UTF8,
    NESTING_TOO_DEEP,
    TOO_MANY_EVENTS,
    BODY_TOO_LARGE,
)

# Reason codes of CMCD input (dead letters and 4xx answers carry them).
CMCD_SYNTAX: Final = "cmcd_syntax"
CMCD_INVALID_VALUE: Final = "cmcd_invalid_value"
CMCD_MISSING_KEY: Final = "cmcd_missing_key"
CMCD_INVALID_UTF8: Final = "invalid_utf8"
CMCD_LINE_TOO_LARGE: Final = "event_too_large"
# A report that arrived after later reports of its session, beyond the collector's wait.
CMCD_OUT_OF_ORDER: Final = "cmcd_out_of_order"


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
