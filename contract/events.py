"""The event contract: one envelope, a typed payload per event type.

Every player, the platform stub and the collector speak these models. `SCHEMA_VERSION`
changes only with a migration note; unknown fields are kept in `extra`, never dropped.

Migration note, schema_version 1 -> 2 (see ingest/README.md, "Contract v2"):

- v2 accepts what a real player knows and nothing more. `network` and most of `device` may
  be left out; the collector derives them (client IP -> country/region/ASN/ISP, User-Agent ->
  device type/OS/model, CDN host -> OCA and tier) and writes `unknown` (ASN 0) for a fact it
  cannot derive. `member_id`/`profile_id` default to `anonymous`, `title_id` to `unknown`.
- Payload measurements a player may not know (startup, rebuffer duration, watched time,
  heartbeat bitrate/buffer/throughput, seek positions) may be null: unknown, never invented.
- `derived_facts` / `unknown_facts` name (as `network.isp`, `device.os`...) the envelope facts
  the collector derived or could not know; every other fact was sent by the client.
- `dimensions` carries up to 10 custom dimensions (experiment, variant...).
- v1 events stay valid and keep their v1 rules: network, device and ids are required.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SCHEMA_VERSION = 2
UNKNOWN: Final = "unknown"
ANONYMOUS: Final = "anonymous"
MAX_DIMENSIONS = 10

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

DeviceType = Literal["tv", "mobile", "web", "console", "unknown"]
CdnTier = Literal["edge", "origin", "unknown"]
ConnectionType = Literal["wifi", "ethernet", "cellular", "unknown"]
Severity = Literal["fatal", "warning"]
ExitReason = Literal["completed", "user_exit", "error", "abandoned_startup", "timeout"]

_ID = Annotated[str, Field(min_length=1, max_length=128)]
_SHORT = Annotated[str, Field(max_length=128)]
_Dimension = Annotated[str, Field(min_length=1, max_length=64)]
_DimensionValue = Annotated[str, Field(max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Device(_Strict):
    """The device a member plays on; `unknown` where nobody knew (v2)."""

    device_id: _ID = UNKNOWN
    device_type: DeviceType = "unknown"
    device_model: _SHORT = UNKNOWN
    os: _SHORT = UNKNOWN
    app_version: _SHORT = UNKNOWN


class Network(_Strict):
    """Where the bytes came from: member's network and the serving cache.

    A player does not know these; the collector derives them (v2). `unknown` (ASN 0, the
    reserved "no AS" number) where it could not.
    """

    # ISO 3166-1 alpha-2, or "unknown".
    country: Annotated[str, Field(min_length=2, max_length=7)] = UNKNOWN
    region: _SHORT = UNKNOWN
    isp: _SHORT = UNKNOWN
    asn: Annotated[int, Field(ge=0, le=4_294_967_295)] = 0
    oca_id: _SHORT = UNKNOWN
    cdn_tier: CdnTier = "unknown"
    connection_type: ConnectionType = "unknown"


# Facts of the envelope a v1 event must send (v2 lets the collector derive them).
V1_REQUIRED_DEVICE: tuple[str, ...] = (
    "device_id",
    "device_type",
    "device_model",
    "os",
    "app_version",
)
V1_REQUIRED_NETWORK: tuple[str, ...] = ("country", "region", "isp", "asn", "oca_id", "cdn_tier")
V1_REQUIRED_TOP: tuple[str, ...] = ("member_id", "profile_id", "title_id", "device", "network")
# Every envelope fact, by path: what `derived_facts` / `unknown_facts` name.
DEVICE_FACTS: tuple[str, ...] = tuple(f"device.{k}" for k in V1_REQUIRED_DEVICE)
NETWORK_FACTS: tuple[str, ...] = tuple(
    f"network.{k}" for k in (*V1_REQUIRED_NETWORK, "connection_type")
)


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
    startup_ms: Annotated[int, Field(ge=0, le=600_000)] | None
    bitrate_kbps: Annotated[int, Field(ge=0, le=200_000)] | None


class Heartbeat(_Strict):
    """Periodic playback state, CMCD-like keys (br, bl, mtp)."""

    event_type: Literal["heartbeat"] = "heartbeat"
    bitrate_kbps: Annotated[int, Field(ge=0, le=200_000)] | None
    buffer_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None
    throughput_kbps: Annotated[int, Field(ge=0, le=10_000_000)] | None
    dropped_frames: Annotated[int, Field(ge=0)] = 0
    position_ms: Annotated[int, Field(ge=0)] = 0
    # None: the player did not say whether it was playing (a CMCD report without `sta`).
    playing: bool | None = True


class BitrateChange(_Strict):
    event_type: Literal["bitrate_change"] = "bitrate_change"
    from_kbps: Annotated[int, Field(ge=0, le=200_000)] | None
    to_kbps: Annotated[int, Field(ge=0, le=200_000)]


class RebufferStart(_Strict):
    event_type: Literal["rebuffer_start"] = "rebuffer_start"
    position_ms: Annotated[int, Field(ge=0)] = 0


class RebufferEnd(_Strict):
    event_type: Literal["rebuffer_end"] = "rebuffer_end"
    duration_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None


class Pause(_Strict):
    event_type: Literal["pause"] = "pause"
    position_ms: Annotated[int, Field(ge=0)] = 0


class Resume(_Strict):
    event_type: Literal["resume"] = "resume"
    paused_ms: Annotated[int, Field(ge=0)] = 0


class Seek(_Strict):
    event_type: Literal["seek"] = "seek"
    from_ms: Annotated[int, Field(ge=0)] | None
    to_ms: Annotated[int, Field(ge=0)] | None


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
    watched_ms: Annotated[int, Field(ge=0)] | None
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
    member_id: _ID = ANONYMOUS
    profile_id: _ID = ANONYMOUS
    session_id: _ID
    title_id: _ID = UNKNOWN
    device: Device = Field(default_factory=Device)
    network: Network = Field(default_factory=Network)
    payload: Payload
    clock_skew_clamped: bool = False
    derived_facts: Annotated[list[str], Field(max_length=32)] = Field(default_factory=list)
    unknown_facts: Annotated[list[str], Field(max_length=32)] = Field(default_factory=list)
    dimensions: Annotated[dict[_Dimension, _DimensionValue], Field(max_length=MAX_DIMENSIONS)] = (
        Field(default_factory=dict)
    )
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
            if data.get("schema_version") == 1:
                _require_v1_facts(data)
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


def _require_v1_facts(data: dict[str, Any]) -> None:
    """A v1 event keeps the v1 contract: it must send every id, device and network fact."""
    missing = [k for k in V1_REQUIRED_TOP if k not in data]
    device, network = data.get("device"), data.get("network")
    if isinstance(device, dict):
        missing += [f"device.{k}" for k in V1_REQUIRED_DEVICE if k not in device]
    if isinstance(network, dict):
        missing += [f"network.{k}" for k in V1_REQUIRED_NETWORK if k not in network]
    if missing:
        raise ValueError(
            "schema_version 1 requires " + ", ".join(missing) + " (v2 lets the collector "
            "derive network and device facts)"
        )


EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(list[Event])
