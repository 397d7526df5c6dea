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


def _cmd_cmcd_log(args: argparse.Namespace) -> int:
    import json
    import sys

    from ingest.cmcd_log import CANNOT_TELL_WHY, analyse_log

    if args.file == "-":
        analysis = analyse_log(sys.stdin)
    else:
        with open(args.file, encoding="utf-8", errors="replace") as handle:
            analysis = analyse_log(handle)
    summaries = [s.summary() for s in analysis.sessions.values()]
    if args.json:
        for summary in summaries:
            print(json.dumps(summary))
    else:
        print(
            f"{'session':<38} {'reqs':>5} {'avg kbps':>9} {'up':>3} {'down':>4} "
            f"{'starved':>7} {'min bl ms':>9} {'mtp kbps':>9}"
        )
        for s in summaries:
            print(
                f"{str(s['session_id'])[:38]:<38} {s['requests']:>5} "
                f"{_num(s['avg_bitrate_kbps']):>9} {s['upshifts']:>3} {s['downshifts']:>4} "
                f"{s['buffer_starvations']:>7} {_num(s['min_buffer_ms']):>9} "
                f"{_num(s['median_throughput_kbps']):>9}"
            )
    print(
        f"{len(summaries)} sessions; {analysis.requests_without_session} CMCD requests "
        f"without sid; {len(analysis.problems)} unreadable lines. Not known: {CANNOT_TELL_WHY}",
        file=sys.stderr,
    )
    for problem in analysis.problems[:20]:
        print(f"line {problem.line_no}: {problem.reason}: {problem.detail}", file=sys.stderr)
    return 0


def _num(value: object) -> str:
    return "-" if value is None else str(value)


def register(sub: Any) -> None:
    """Add the `collector` and `schema` subcommands."""
    collector = sub.add_parser(
        "collector", help="run the HTTP event collector (POST /v1/events -> Kafka)"
    )
    collector.add_argument("--host", default=None, help="bind address (default: settings)")
    collector.add_argument("--port", type=int, default=None, help="port (default: settings)")
    collector.set_defaults(handler=_cmd_collector)

    ingest = sub.add_parser("ingest", help="read player data from other sources")
    isub = ingest.add_subparsers(dest="ingest_command", required=True, metavar="SOURCE")
    cmcd_log = isub.add_parser(
        "cmcd-log",
        help="per-session bitrate, buffer starvation, throughput and rendition switches from "
        "CDN/origin access logs with CMCD v1 (combined log format, CMCD= query or headers)",
    )
    cmcd_log.add_argument("file", metavar="FILE", help="access log, or - for standard input")
    cmcd_log.add_argument("--json", action="store_true", help="one JSON object per session")
    cmcd_log.set_defaults(handler=_cmd_cmcd_log)

    schema = sub.add_parser("schema", help="the event contract as JSON Schema")
    ssub = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    export = ssub.add_parser("export", help="write JSON Schema files of every event type")
    export.add_argument("directory", metavar="DIR", help="output directory (created)")
    export.set_defaults(handler=_cmd_schema_export)
