"""The event contract: one envelope, a typed payload per event type.

Every player, the platform stub and the collector speak these models. `SCHEMA_VERSION`
changes only with a migration note; unknown fields are kept in `extra`, never dropped.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 1

EventType = Literal[
    "play_requested",
    "manifest_loaded",
    "license_acquired",
    "first_frame",
    "heartbeat",
    "bitrate_change",
    "rebuffer_start",
    "rebuffer_end",
    "pause",
    "resume",
    "seek",
    "error",
    "playback_end",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

DeviceType = Literal["tv", "mobile", "web", "console"]
CdnTier = Literal["edge", "origin"]
ConnectionType = Literal["wifi", "ethernet", "cellular", "unknown"]
Severity = Literal["fatal", "warning"]
ExitReason = Literal["completed", "user_exit", "error", "abandoned_startup", "timeout"]

_ID = Annotated[str, Field(min_length=1, max_length=128)]
_SHORT = Annotated[str, Field(max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Strict):
    """The device a member plays on."""

    device_id: _ID
    device_type: DeviceType
    device_model: _SHORT
    os: _SHORT
    app_version: _SHORT


class Network(_Strict):
    """Where the bytes came from: member's network and the serving cache."""

    country: Annotated[str, Field(min_length=2, max_length=2)]
    region: _SHORT
    isp: _SHORT
    asn: Annotated[int, Field(ge=0, le=4_294_967_295)]
    oca_id: _SHORT
    cdn_tier: CdnTier
    connection_type: ConnectionType = "unknown"


# --- payloads -------------------------------------------------------------------------


class PlayRequested(_Strict):
    event_type: Literal["play_requested"] = "play_requested"
    autoplay: bool = False
    resume_position_ms: Annotated[int, Field(ge=0)] = 0


class ManifestLoaded(_Strict):
    event_type: Literal["manifest_loaded"] = "manifest_loaded"
    latency_ms: Annotated[int, Field(ge=0, le=600_000)]
    renditions: Annotated[int, Field(ge=0, le=64)] = 0


class LicenseAcquired(_Strict):
    event_type: Literal["license_acquired"] = "license_acquired"
    latency_ms: Annotated[int, Field(ge=0, le=600_000)]
    drm: Literal["widevine", "playready", "fairplay", "none"] = "widevine"


class FirstFrame(_Strict):
    event_type: Literal["first_frame"] = "first_frame"
    startup_ms: Annotated[int, Field(ge=0, le=600_000)]
    bitrate_kbps: Annotated[int, Field(ge=0, le=200_000)]


class Heartbeat(_Strict):
    """Periodic playback state, CMCD-like keys (br, bl, mtp)."""

    event_type: Literal["heartbeat"] = "heartbeat"
    bitrate_kbps: Annotated[int, Field(ge=0, le=200_000)]
    buffer_ms: Annotated[int, Field(ge=0, le=3_600_000)]
    throughput_kbps: Annotated[int, Field(ge=0, le=10_000_000)]
    dropped_frames: Annotated[int, Field(ge=0)] = 0
    position_ms: Annotated[int, Field(ge=0)] = 0
    playing: bool = True


class BitrateChange(_Strict):
    event_type: Literal["bitrate_change"] = "bitrate_change"
    from_kbps: Annotated[int, Field(ge=0, le=200_000)]
    to_kbps: Annotated[int, Field(ge=0, le=200_000)]


class RebufferStart(_Strict):
    event_type: Literal["rebuffer_start"] = "rebuffer_start"
    position_ms: Annotated[int, Field(ge=0)] = 0


class RebufferEnd(_Strict):
    event_type: Literal["rebuffer_end"] = "rebuffer_end"
    duration_ms: Annotated[int, Field(ge=0, le=3_600_000)]


class Pause(_Strict):
    event_type: Literal["pause"] = "pause"
    position_ms: Annotated[int, Field(ge=0)] = 0


class Resume(_Strict):
    event_type: Literal["resume"] = "resume"
    paused_ms: Annotated[int, Field(ge=0)] = 0


class Seek(_Strict):
    event_type: Literal["seek"] = "seek"
    from_ms: Annotated[int, Field(ge=0)]
    to_ms: Annotated[int, Field(ge=0)]


class PlaybackError(_Strict):
    """An error from the catalog (`ingest/error_catalog.json`)."""

    event_type: Literal["error"] = "error"
    code: Annotated[str, Field(min_length=1, max_length=64)]
    category: Literal[
        "network", "drm", "cdn", "manifest", "decoder", "entitlement", "device", "unknown"
    ]
    severity: Severity
    http_status: Annotated[int, Field(ge=0, le=599)] | None = None
    message: Annotated[str, Field(max_length=2048)] = ""


class PlaybackEnd(_Strict):
    event_type: Literal["playback_end"] = "playback_end"
    watched_ms: Annotated[int, Field(ge=0)]
    exit_reason: ExitReason


Payload = Annotated[
    PlayRequested
    | ManifestLoaded
    | LicenseAcquired
    | FirstFrame
    | Heartbeat
    | BitrateChange
    | RebufferStart
    | RebufferEnd
    | Pause
    | Resume
    | Seek
    | PlaybackError
    | PlaybackEnd,
    Field(discriminator="event_type"),
]

PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "play_requested": PlayRequested,
    "manifest_loaded": ManifestLoaded,
    "license_acquired": LicenseAcquired,
    "first_frame": FirstFrame,
    "heartbeat": Heartbeat,
    "bitrate_change": BitrateChange,
    "rebuffer_start": RebufferStart,
    "rebuffer_end": RebufferEnd,
    "pause": Pause,
    "resume": Resume,
    "seek": Seek,
    "error": PlaybackError,
    "playback_end": PlaybackEnd,
}


_EVENT_FIELDS: frozenset[str] = frozenset()  # filled in once Event exists (below)


class Event(BaseModel):
    """One telemetry event: the envelope and its typed payload.

    `event_type` is repeated in the envelope (for routing and indexing without parsing the
    payload) and must agree with the payload's discriminator.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: uuid.UUID
    event_type: EventType
    schema_version: Annotated[int, Field(ge=1, le=SCHEMA_VERSION)] = SCHEMA_VERSION
    event_time: datetime
    received_at: datetime | None = None
    member_id: _ID
    profile_id: _ID
    session_id: _ID
    title_id: _ID
    device: Device
    network: Network
    payload: Payload
    clock_skew_clamped: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _move_unknown_fields_to_extra(cls, data: Any) -> Any:
        # Unknown top-level fields from newer players are kept, not dropped and not rejected.
        if isinstance(data, dict):
            # A module-level frozenset: `cls.model_fields` costs a descriptor call per key,
            # which showed up as a fifth of the collector's validation time.
            known = _EVENT_FIELDS or frozenset(cls.model_fields)
            unknown = {k: v for k, v in data.items() if k not in known}
            if unknown:
                data = {k: v for k, v in data.items() if k in known}
                given = data.get("extra") or {}
                if not isinstance(given, dict):
                    # A ValueError becomes a ValidationError; dict(5) would escape as TypeError.
                    raise ValueError("extra must be a JSON object")
                merged = dict(given)
                merged.update(unknown)
                data["extra"] = merged
            payload = data.get("payload")
            # Players may omit the payload's own type tag; the envelope's type supplies it.
            if (
                isinstance(payload, dict)
                and "event_type" not in payload
                and isinstance(data.get("event_type"), str)
            ):
                data = {**data, "payload": {**payload, "event_type": data["event_type"]}}
        return data

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Event:
        if self.payload.event_type != self.event_type:
            raise ValueError(
                f"event_type {self.event_type!r} does not match payload type "
                f"{self.payload.event_type!r}"
            )
        if self.event_time.tzinfo is None:
            raise ValueError("event_time must carry a timezone (use UTC, e.g. ...Z)")
        return self


_EVENT_FIELDS = frozenset(Event.model_fields)

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
