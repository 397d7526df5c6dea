"""`streamwatch reconcile`: counts of every stage of the pipeline, and where any gap is."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from streamwatch.settings import get_settings


def _when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _cmd_reconcile(args: argparse.Namespace) -> int:
    from ops.reconcile import reconcile, render_report

    report = asyncio.run(
        reconcile(
            get_settings(),
            since=_when(args.since) if args.since else None,
            until=_when(args.until) if args.until else None,
            run=args.run,
        )
    )
    if args.json:
        print(json.dumps(report.as_dict(), indent=1, default=str))
    else:
        print(render_report(report))
    return 0 if not report.gaps else 1


def register(sub: Any) -> None:
    """Add the `reconcile` subcommand."""
    rec = sub.add_parser("reconcile", help="compare produced / raw / validated / stored counts")
    rec.add_argument("--json", action="store_true", help="machine-readable output")
    rec.add_argument("--since", help="ISO time (inclusive); default: everything")
    rec.add_argument("--until", help="ISO time (exclusive); default: now")
    rec.add_argument("--run", help="stub run id (default: every run under data_dir/stub)")
    rec.set_defaults(handler=_cmd_reconcile)
