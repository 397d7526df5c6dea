"""The local segment server: the ladder, the player pages, per-session faults, a CMCD capture.

Routes:

- `GET /m/{token}/{path}`: a file of the ladder, for the playback session `token`. Media
  segments get that session's fault (`PUT /faults/{token}`): paced to a slow link for a
  while, or answered with 404/500 from some segment on.
- `PUT /faults/{token}` (JSON, see `players.faults.fault_from_json`); `GET /faults/{token}`:
  what that session requested and got.
- `POST /capture/{kind}/{token}`: keeps request bodies as sent (CMCD reports, SDK batches),
  answers 204; `GET /capture/{kind}/{token}` returns them. Used to capture real players'
  CMCD v2 output without a collector.
- `POST /collector/{path}`: forwards to the streamwatch collector, so a page served here
  reports to the collector from its own origin (no CORS preflight needed); the bodies are
  also kept, as `GET /capture/collector/{path with / as _}` (e.g. `v1_cmcd`).
- `/`, `/player.html`: the pages; `/sdk/streamwatch.js`, `/lib/hls.js`, `/lib/dash.js`: the
  SDK bundle and the players from `sdk/web` (installed by `npm ci`, built by esbuild).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web

from players.faults import (
    FailSegments,
    Segment,
    SessionLog,
    Throttle,
    fault_from_json,
    parse_segment,
)
from players.ladder import Ladder

REPO = Path(__file__).resolve().parents[1]
SDK_DIR = REPO / "sdk" / "web"
PAGE_DIR = Path(__file__).resolve().parent / "page"
_CHUNK = 4096
_NO_STORE = {"Cache-Control": "no-store"}

LIBRARIES: dict[str, Path] = {
    "hls.js": SDK_DIR / "node_modules" / "hls.js" / "dist" / "hls.min.js",
    "dash.js": SDK_DIR / "node_modules" / "dashjs" / "dist" / "modern" / "umd" / "dash.all.min.js",
    "streamwatch.js": SDK_DIR / "dist" / "streamwatch.js",
}


@dataclass
class ServerState:
    """The ladder, per-session logs and captured bodies."""

    ladder: Ladder
    collector_url: str | None = None
    sessions: dict[str, SessionLog] = field(default_factory=dict)
    captured: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def session(self, token: str) -> SessionLog:
        """The log of a session token (created on first use)."""
        return self.sessions.setdefault(token, SessionLog())


_STATE = web.AppKey("state", ServerState)
_CLIENT = web.AppKey("client", aiohttp.ClientSession)


def _media_type(path: Path) -> str:
    return {
        ".m3u8": "application/vnd.apple.mpegurl",
        ".mpd": "application/dash+xml",
        ".m4s": "video/iso.segment",
        ".mp4": "video/mp4",
    }.get(path.suffix, "application/octet-stream")


async def _paced(
    request: web.Request, body: bytes, log: SessionLog, throttle: Throttle
) -> web.StreamResponse:
    resp = web.StreamResponse(headers={**_NO_STORE, "Content-Length": str(len(body))})
    resp.content_type = "video/iso.segment"
    await resp.prepare(request)
    per_chunk_s = _CHUNK * 8 / (throttle.kbps * 1000)
    try:
        for i in range(0, len(body), _CHUNK):
            # Only while the window is open: a request that outlives it finishes at full speed.
            if log.throttle_active(time.monotonic()):
                await asyncio.sleep(per_chunk_s)
            await resp.write(body[i : i + _CHUNK])
        await resp.write_eof()
    except ConnectionError:
        # The player gave up on a slow segment (hls.js abandons it to switch down): normal.
        pass
    return resp


async def get_media(request: web.Request) -> web.StreamResponse:
    """A ladder file, with the session's fault applied to media segments."""
    state = request.app[_STATE]
    token, rel = request.match_info["token"], request.match_info["path"]
    root = state.ladder.root.resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound(headers=_NO_STORE)
    log = state.session(token)
    names = tuple(r.name for r in state.ladder.spec.renditions)
    seg: Segment | None = parse_segment(rel, names)
    now = time.monotonic()
    fault = log.fault
    if seg is not None and isinstance(fault, FailSegments) and fault.fails(seg):
        log.requests.append((now, rel, fault.status))
        return web.Response(status=fault.status, text="injected fault", headers=_NO_STORE)
    body = path.read_bytes()
    log.requests.append((now, rel, 200))
    if seg is not None:
        throttled = isinstance(fault, Throttle) and log.throttle_active(now)
        log.segments_served += 1
        if throttled and isinstance(fault, Throttle):
            return await _paced(request, body, log, fault)
    return web.Response(body=body, content_type=_media_type(path), headers=_NO_STORE)


async def put_fault(request: web.Request) -> web.Response:
    """Register the fault of one session token."""
    try:
        fault = fault_from_json(await request.json())
    except (ValueError, KeyError, TypeError) as exc:
        raise web.HTTPBadRequest(text=f"bad fault: {exc}") from exc
    log = request.app[_STATE].session(request.match_info["token"])
    log.fault = fault
    return web.json_response({"ok": True})


async def get_fault_log(request: web.Request) -> web.Response:
    """What a session requested and got."""
    log = request.app[_STATE].session(request.match_info["token"])
    return web.json_response(
        {
            "segments_served": log.segments_served,
            "throttle_started": log.throttle_started,
            "requests": [{"t": t, "path": p, "status": s} for t, p, s in log.requests],
        }
    )


async def post_capture(request: web.Request) -> web.Response:
    """Keep a body as sent (for capturing real players' reports)."""
    key = (request.match_info["kind"], request.match_info["token"])
    body = await request.text()
    request.app[_STATE].captured.setdefault(key, []).append(body)
    return web.Response(status=204)


async def get_capture(request: web.Request) -> web.Response:
    """The captured bodies, as a JSON list of strings."""
    key = (request.match_info["kind"], request.match_info["token"])
    return web.json_response(request.app[_STATE].captured.get(key, []))


_HOP_HEADERS = ("Content-Type", "User-Agent")


async def proxy_collector(request: web.Request) -> web.Response:
    """Forward a report to the collector; its status and Retry-After come back unchanged."""
    state = request.app[_STATE]
    if not state.collector_url:
        raise web.HTTPServiceUnavailable(text="no collector configured")
    path = request.match_info["path"]
    url = f"{state.collector_url.rstrip('/')}/{path}"
    body = await request.read()
    # Kept as sent, so a test can compare what the player said with what streamwatch made.
    state.captured.setdefault(("collector", path.replace("/", "_")), []).append(
        body.decode("utf-8", "replace")
    )
    headers = {h: request.headers[h] for h in _HOP_HEADERS if h in request.headers}
    peer = request.remote or ""
    prior = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    async with request.app[_CLIENT].post(url, data=body, headers=headers) as r:
        out = {"Retry-After": r.headers["Retry-After"]} if "Retry-After" in r.headers else {}
        return web.Response(
            status=r.status, body=await r.read(), headers=out, content_type=r.content_type
        )


def _file(path: Path, content_type: str) -> web.Response:
    if not path.is_file():
        raise web.HTTPNotFound(text=f"{path.name} missing: run `make setup` (npm ci, build)")
    return web.Response(body=path.read_bytes(), content_type=content_type, headers=_NO_STORE)


async def get_library(request: web.Request) -> web.Response:
    """hls.js, dash.js or the SDK bundle."""
    name = request.match_info["name"]
    if name not in LIBRARIES:
        raise web.HTTPNotFound()
    return _file(LIBRARIES[name], "text/javascript")


async def get_page(request: web.Request) -> web.Response:
    """A page of `players/page/`."""
    name = request.match_info.get("name") or "player.html"
    if "/" in name or not (PAGE_DIR / name).is_file():
        raise web.HTTPNotFound()
    kind = "text/html" if name.endswith(".html") else "text/javascript"
    return _file(PAGE_DIR / name, kind)


async def _client_ctx(app: web.Application) -> object:
    app[_CLIENT] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    yield
    await app[_CLIENT].close()


def create_app(ladder: Ladder, collector_url: str | None = None) -> web.Application:
    """The segment server's aiohttp application."""
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[_STATE] = ServerState(ladder=ladder, collector_url=collector_url)
    app.cleanup_ctx.append(_client_ctx)  # type: ignore[arg-type]
    app.router.add_get("/m/{token}/{path:.+}", get_media)
    app.router.add_put("/faults/{token}", put_fault)
    app.router.add_get("/faults/{token}", get_fault_log)
    app.router.add_post("/capture/{kind}/{token}", post_capture)
    app.router.add_get("/capture/{kind}/{token}", get_capture)
    app.router.add_post("/collector/{path:.+}", proxy_collector)
    app.router.add_get("/lib/{name}", get_library)
    app.router.add_get("/", get_page)
    app.router.add_get("/{name}", get_page)
    return app
