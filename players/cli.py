"""`streamwatch players serve`: the local ladder and the real-player page (hls.js + SDK + CMCD)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streamwatch.settings import get_settings


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from players.ladder import build
    from players.media_server import create_app

    settings = get_settings()
    media = Path(args.media) if args.media else settings.data_dir / "media"
    ladder = build(media)
    collector = args.collector_url or f"http://{settings.collector_host}:{settings.collector_port}"
    port = args.port or settings.player_page_port
    print(f"player page on http://127.0.0.1:{port}/ (reports to {collector})", flush=True)
    web.run_app(create_app(ladder, collector), host=args.host, port=port, print=None)
    return 0


def register(sub: Any) -> None:
    """Add `players serve`."""
    p = sub.add_parser("players", help="the real-player page: local ladder, hls.js, SDK, CMCD")
    psub = p.add_subparsers(dest="players_command", required=True)
    serve = psub.add_parser("serve", help="serve the ladder and the player page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--collector-url", default=None, help="collector base URL")
    serve.add_argument("--media", default=None, help="ladder directory (made with ffmpeg)")
    serve.set_defaults(handler=_serve)
