"""JSON Schema of the event contract, for player teams and other languages.

`export_schemas(DIR)` writes the envelope (every event type, discriminated on `event_type`),
one schema per event type (the envelope narrowed to that type's payload) and an index.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from contract.events import EVENT_ADAPTER, EVENT_TYPES, PAYLOAD_MODELS, SCHEMA_VERSION

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ID_BASE = "urn:streamwatch:schemas:v{version}:"
_SHARED_DEFS = ("Device", "Network")


def envelope_schema() -> dict[str, Any]:
    """The schema of any event (what `EVENT_ADAPTER` validates)."""
    schema = copy.deepcopy(EVENT_ADAPTER.json_schema(mode="validation"))
    # pydantic describes the payload as a oneOf discriminated on the payload's own
    # `event_type`, but players may omit that tag (the envelope's type supplies it), and then
    # payloads with the same fields (pause / rebuffer_start) match several branches. Selecting
    # the payload schema by the envelope's type is what the validator really does.
    schema["properties"]["payload"] = {
        "type": "object",
        "description": "Typed by the envelope's event_type (see allOf).",
    }
    schema["allOf"] = [
        {
            "if": {"properties": {"event_type": {"const": t}}, "required": ["event_type"]},
            "then": {"properties": {"payload": {"$ref": f"#/$defs/{PAYLOAD_MODELS[t].__name__}"}}},
        }
        for t in EVENT_TYPES
    ]
    return _decorate(schema, "envelope.schema.json", "streamwatch event (any type)")


def event_type_schema(event_type: str) -> dict[str, Any]:
    """The envelope narrowed to one event type and its payload."""
    model = PAYLOAD_MODELS[event_type]
    schema = copy.deepcopy(EVENT_ADAPTER.json_schema(mode="validation"))
    props = schema["properties"]
    props["event_type"] = {"const": event_type, "type": "string", "title": "Event Type"}
    props["payload"] = {"$ref": f"#/$defs/{model.__name__}"}
    keep = {*_SHARED_DEFS, model.__name__}
    schema["$defs"] = {k: v for k, v in schema["$defs"].items() if k in keep}
    schema["title"] = f"Event[{event_type}]"
    return _decorate(schema, f"events/{event_type}.schema.json", f"a {event_type} event")


def _decorate(schema: dict[str, Any], relpath: str, what: str) -> dict[str, Any]:
    head = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": _ID_BASE.format(version=SCHEMA_VERSION) + relpath,
        "description": f"{schema.get('description', '').strip()}\n\nSchema of {what}, "
        f"schema_version {SCHEMA_VERSION}. Unknown top-level fields are allowed and kept in "
        "`extra`.".strip(),
    }
    return {**head, **{k: v for k, v in schema.items() if k != "description"}}


def export_schemas(directory: Path) -> list[Path]:
    """Write every schema file and `index.json` under `directory`; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events").mkdir(exist_ok=True)
    written: list[Path] = []
    entries: list[dict[str, str]] = []

    def write(relpath: str, schema: dict[str, Any]) -> None:
        path = directory / relpath
        path.write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        written.append(path)

    write("envelope.schema.json", envelope_schema())
    for event_type in EVENT_TYPES:
        relpath = f"events/{event_type}.schema.json"
        write(relpath, event_type_schema(event_type))
        entries.append({"event_type": event_type, "file": relpath})
    index = {
        "schema_version": SCHEMA_VERSION,
        "dialect": JSON_SCHEMA_DIALECT,
        "envelope": "envelope.schema.json",
        "event_types": entries,
    }
    write("index.json", index)
    return written
