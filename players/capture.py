"""Capture real players' CMCD v2 event-mode output: `python -m players.capture OUTDIR`.

Plays the local ladder with hls.js and dash.js in Chromium, once throttled (a rebuffer and a
downshift) and once with segments answering 404/500 (a fatal error), with each player's CMCD
v2 event mode pointed at the segment server's capture endpoint, and writes each session's
request bodies, exactly as the player sent them, to OUTDIR/<player>-<version>-<case>.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import urllib.request
import uuid
from pathlib import Path

from players import ladder as ladder_mod
from players.background import ServerThread
from players.browser import PlaySpec, play_all
from players.media_server import SDK_DIR

# The throttle must stall a player however fast it starts. It opens on the 4th segment
# request, so at most 3 s of media (1 s segments) are buffered; 10 s at 40 kbps then carry at
# most 2.7 s of the lowest rendition (150 kbps). A player that starts playing within 4 s of
# the window opening runs dry before it closes. At 120 kbps for 5 s, a player that started
# slowly (9 pages at once on 2 cores) could ride out the window on its buffer.
THROTTLED: dict[str, object] = {"kind": "throttle", "after_segments": 3, "for_s": 10, "kbps": 40}
CASES: dict[str, dict[str, object]] = {
    "throttled": THROTTLED,
    "fatal404": {"kind": "fail", "status": 404, "from_index": 3},
    "fatal500": {"kind": "fail", "status": 500, "from_index": 3},
}
PLAYERS = {"hls": ("hls.js", "hlsjs"), "dash": ("dashjs", "dashjs")}


def _version(package: str) -> str:
    data = json.loads((SDK_DIR / "node_modules" / package / "package.json").read_text())
    return str(data["version"])


def put_fault(base: str, token: str, fault: dict[str, object]) -> None:
    """Register a session's fault on the segment server."""
    req = urllib.request.Request(
        f"{base}/faults/{token}", data=json.dumps(fault).encode(), method="PUT",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def get_json(url: str) -> object:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def main(argv: list[str] | None = None) -> int:
    """Capture every player x case into OUTDIR."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--media", type=Path, default=Path(".streamwatch/media"))
    args = ap.parse_args(argv)
    ladder = ladder_mod.build(args.media)
    args.outdir.mkdir(parents=True, exist_ok=True)
    with ServerThread(ladder) as server:
        specs: list[tuple[str, PlaySpec]] = []
        for player, (package, label) in PLAYERS.items():
            for case, fault in CASES.items():
                token = f"cap-{player}-{case}-{uuid.uuid4().hex[:6]}"
                put_fault(server.base_url, token, fault)
                spec = PlaySpec(
                    player=player, report="cmcd", token=token,
                    session_id=f"capture-{player}-{case}", member_id="member-capture-1",
                    fast_fail=case.startswith("fatal"), cmcd_url=f"/capture/cmcd/{token}",
                )  # fmt: skip
                specs.append((f"{label}-{_version(package)}-{case}", spec))
        results = asyncio.run(play_all(server.base_url, [s for _, s in specs]))
        for (name, spec), measure in zip(specs, results, strict=True):
            bodies = get_json(f"{server.base_url}/capture/cmcd/{spec.token}")
            assert isinstance(bodies, list)
            (args.outdir / f"{name}.txt").write_text("".join(bodies))
            summary = {k: v for k, v in measure.items() if k not in ("console", "config")}
            summary["fatalErrorDetail"] = str(summary.get("fatalErrorDetail") or "")[:80]
            page = {"session_id": spec.session_id, "member_id": spec.member_id, **summary}
            (args.outdir / f"{name}.page.json").write_text(json.dumps(page, indent=1) + "\n")
            print(name, len(bodies), "reports", json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
