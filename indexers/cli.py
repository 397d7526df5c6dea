"""`streamwatch sink search|warehouse`, `streamwatch sql`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from streamwatch.service_metrics import start_service_exporter
from streamwatch.settings import get_settings


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("opensearch").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def _cmd_sink_search(args: argparse.Namespace) -> int:
    from indexers.search_factory import make_backend
    from indexers.search_setup import apply_retention, ensure_search_ready
    from indexers.services import install_stop_handlers, run_search_sink

    _logging()
    settings = get_settings()
    if args.apply_retention or args.setup_only:
        backend = make_backend(settings)
        try:
            report = ensure_search_ready(backend, settings)
            print(f"templates: {', '.join(report.templates)}; retention: {report.retention}")
            if args.apply_retention:
                deleted = apply_retention(backend, settings)
                print(f"deleted {len(deleted)} expired daily indices: {' '.join(deleted)}")
        finally:
            backend.close()
        return 0

    start_service_exporter(settings, "sink-search")

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_handlers(stop)
        await run_search_sink(settings, stop)

    asyncio.run(main())
    return 0


def _cmd_sink_warehouse(args: argparse.Namespace) -> int:
    from indexers.services import install_stop_handlers, run_warehouse_sink
    from indexers.warehouse_compact import compact

    _logging()
    settings = get_settings()
    if args.compact:
        report = compact(settings)
        print(
            f"compacted {report.partitions_compacted} partitions "
            f"({report.files_retired} files retired, {report.files_deleted} deleted)"
        )
        return 0

    start_service_exporter(settings, "sink-warehouse")

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_handlers(stop)
        await run_warehouse_sink(settings, stop)

    asyncio.run(main())
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from indexers.sql_cli import render, run_query

    names, rows = run_query(get_settings(), args.query)
    print(render(names, rows, args.format))
    return 0


def register(sub: Any) -> None:
    """Add `sink` and `sql` subcommands."""
    sink = sub.add_parser("sink", help="search and warehouse sinks (consume topics into stores)")
    ssub = sink.add_subparsers(dest="sink_command", required=True, metavar="SINK")
    search = ssub.add_parser("search", help="index events, sessions, incidents into search")
    search.add_argument(
        "--apply-retention",
        action="store_true",
        help="delete daily event indices older than search_retention_days, then exit",
    )
    search.add_argument(
        "--setup-only", action="store_true", help="install templates/indices/policy, then exit"
    )
    search.set_defaults(handler=_cmd_sink_search)
    warehouse = ssub.add_parser("warehouse", help="append events, sessions, ... to Parquet")
    warehouse.add_argument(
        "--compact",
        action="store_true",
        help="compact closed hours into one file each (the sink also does it every 10 min)",
    )
    warehouse.set_defaults(handler=_cmd_sink_warehouse)

    sql = sub.add_parser("sql", help="run SQL over the warehouse views (see docs/warehouse.md)")
    sql.add_argument("query", help='SQL, e.g. "SELECT count(*) FROM events"')
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.set_defaults(handler=_cmd_sql)
