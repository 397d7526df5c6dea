"""`streamwatch infra up|down|status|fetch`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra import stack
from streamwatch.settings import get_settings


def _cmd_up(args: argparse.Namespace) -> int:
    settings = get_settings()
    for name, started in stack.up(settings).items():
        print(f"{name:11s} {'started' if started else 'already running'}")
    _print_status()
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    settings = get_settings()
    stopped = stack.down(settings)
    # A server another checkout (or a person) started answers here too: say so rather than
    # "was not running", and leave it alone, since its owner may still be using it.
    still = {st.name: st for st in stack.status(settings) if st.running}
    for name, was_stopped in stopped.items():
        if was_stopped:
            print(f"{name:11s} stopped")
        elif name in still:
            pid = still[name].pid if still[name].pid is not None else "?"
            print(f"{name:11s} left running: not started by this checkout (pid {pid})")
        else:
            print(f"{name:11s} was not running")
    return 0


def _print_status() -> None:
    for st in stack.status(get_settings()):
        state = "healthy" if st.healthy else ("running" if st.running else "stopped")
        pid = st.pid if st.pid is not None else "-"
        print(f"{st.name:11s} {state:8s} v{st.version:8s} {st.address:24s} pid {pid}")


def _cmd_status(args: argparse.Namespace) -> int:
    statuses = stack.status(get_settings())
    if args.json:
        print(json.dumps({s.name: s.as_dict() for s in statuses}, indent=2))
    else:
        _print_status()
    return 0 if all(s.healthy for s in statuses) else 1


def _cmd_fetch(args: argparse.Namespace) -> int:
    stack.fetch_all(get_settings())
    print("servers fetched into", get_settings().cache_dir)
    return 0


def register(sub: Any) -> None:
    """Add `infra` subcommands."""
    infra = sub.add_parser(
        "infra", help="local servers: Kafka, OpenSearch or Elasticsearch, Prometheus"
    )
    isub = infra.add_subparsers(dest="infra_command", required=True, metavar="ACTION")
    isub.add_parser("up", help="start every server (no-op for those running)").set_defaults(
        handler=_cmd_up
    )
    isub.add_parser("down", help="stop what runs").set_defaults(handler=_cmd_down)
    st = isub.add_parser("status", help="each server: running, version, address, pid")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(handler=_cmd_status)
    isub.add_parser("fetch", help="fetch server jars and zips from Maven Central").set_defaults(
        handler=_cmd_fetch
    )
