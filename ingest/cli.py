"""`streamwatch collector` and `streamwatch schema export`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamwatch.settings import get_settings


def _cmd_collector(args: argparse.Namespace) -> int:
    from ingest.collector import run_collector

    run_collector(get_settings(), host=args.host, port=args.port)
    return 0


def _cmd_schema_export(args: argparse.Namespace) -> int:
    from ingest.schema_export import export_schemas

    written = export_schemas(Path(args.directory))
    print(f"wrote {len(written)} schema files to {args.directory}")
    return 0


def register(sub: Any) -> None:
    """Add the `collector` and `schema` subcommands."""
    collector = sub.add_parser(
        "collector", help="run the HTTP event collector (POST /v1/events -> Kafka)"
    )
    collector.add_argument("--host", default=None, help="bind address (default: settings)")
    collector.add_argument("--port", type=int, default=None, help="port (default: settings)")
    collector.set_defaults(handler=_cmd_collector)

    schema = sub.add_parser("schema", help="the event contract as JSON Schema")
    ssub = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    export = ssub.add_parser("export", help="write JSON Schema files of every event type")
    export.add_argument("directory", metavar="DIR", help="output directory (created)")
    export.set_defaults(handler=_cmd_schema_export)
