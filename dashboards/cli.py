"""`streamwatch dashboards` (the SRE app) and `streamwatch grafana provision`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from streamwatch.settings import get_settings

APP = Path(__file__).parent / "app.py"


def _run_app(args: argparse.Namespace) -> int:
    settings = get_settings()
    port = args.port or settings.dashboards_port
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.port", str(port), "--server.address", args.address,
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        # SREs get no "Deploy" button or developer menu.
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    # exec, not a child process: the app becomes this process, so `demo down` and tests that
    # signal this pid stop Streamlit itself instead of orphaning it on its port.
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def _provision(args: argparse.Namespace) -> int:
    from dashboards.grafana.provision import provision

    settings = get_settings()
    token = args.token or (
        settings.grafana_token.get_secret_value() if settings.grafana_token else None
    )
    result = provision(settings, url=args.url or settings.grafana_url, token=token)
    for line in result.lines():
        print(line)
    return 0


def register(sub: Any) -> None:
    """Add `dashboards` and `grafana` subcommands."""
    p = sub.add_parser("dashboards", help="run the SRE dashboards (Streamlit)")
    p.add_argument("--port", type=int, default=None, help="default: Settings.dashboards_port")
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(handler=_run_app)

    g = sub.add_parser("grafana", help="Grafana dashboards as code")
    gsub = g.add_subparsers(dest="grafana_command", required=True, metavar="COMMAND")
    prov = gsub.add_parser("provision", help="create or update datasources and dashboards")
    prov.add_argument("--url", default=None, help="Grafana URL (default: Settings.grafana_url)")
    prov.add_argument("--token", default=None, help="service-account token (or env)")
    prov.set_defaults(handler=_provision)
