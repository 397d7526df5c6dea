"""`streamwatch ingest cmcd-log`: CMCD v1 from access logs, per session, and what it cannot tell."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from ingest.cmcd_log import CANNOT_TELL, analyse_log
from streamwatch.cli import main

UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0 Safari/537.36"


def _line(second: int, cmcd: str, status: int = 200, headers: str = "") -> str:
    """One combined-log line, CMCD in the query as hls.js/dash.js send it (v1, URL-encoded)."""
    target = f"/v/seg{second}.m4s?CMCD={quote(cmcd, safe='')}" if cmcd else f"/v/seg{second}.m4s"
    extra = f' "{headers}"' if headers else ""
    return (
        f"198.51.100.7 - - [29/Nov/2026:17:{second // 60:02d}:{second % 60:02d} +0000] "
        f'"GET {target} HTTP/1.1" {status} 51234 "https://player.example/" "{UA}"{extra}\n'
    )


def _log() -> str:
    sid = 'sid="6e2fb550-c457-11e9-bb97-0800200c9a66"'
    lines = [
        _line(0, f'bl=0,br=3000,cid="t-1",d=4000,mtp=25000,ot=v,sf=h,st=v,{sid}'),
        _line(4, f"bl=4000,br=3000,d=4000,mtp=24000,ot=v,{sid}"),
        _line(5, f"bl=4000,br=128,d=4000,mtp=24000,ot=a,{sid}"),  # audio: not a rendition
        _line(8, f"bl=1000,br=1500,d=4000,mtp=6000,ot=v,{sid}"),  # downshift
        _line(12, f"bl=0,br=1500,bs,d=4000,mtp=5000,ot=v,{sid}", status=200),  # starved
        _line(16, f"bl=2000,br=3000,d=2000,mtp=20000,ot=v,{sid}"),  # upshift
        _line(17, "", status=200),  # a request without CMCD
        "this is not a log line\n",
        # An origin that logs the CMCD headers instead (nginx: "$http_cmcd_session" ...).
        _line(20, "", headers='CMCD-Session: sid=\\"other\\",cid=\\"t-2\\"'),
    ]
    lines[-1] = lines[-1].rstrip("\n") + ' "CMCD-Object: br=800,d=2000,ot=v"\n'
    return "".join(lines)


def test_v1_gives_bitrate_switches_starvation_and_throughput_per_session() -> None:
    analysis = analyse_log(io.StringIO(_log()))
    s = analysis.sessions["6e2fb550-c457-11e9-bb97-0800200c9a66"].summary()
    # Weighted by object duration: (3000*4 + 3000*4 + 1500*4 + 1500*4 + 3000*2) / 18 s.
    assert s["avg_bitrate_kbps"] == pytest.approx(2333.3, abs=0.1)
    assert (s["upshifts"], s["downshifts"]) == (1, 1)
    assert s["buffer_starvations"] == 1 and s["min_buffer_ms"] == 0
    assert s["median_throughput_kbps"] == 22000  # of all six requests, audio included
    assert s["content_id"] == "t-1" and s["video_requests"] == 5
    assert s["cannot_tell"] == list(CANNOT_TELL) and "startup_ms" in s["cannot_tell"]
    other = analysis.sessions["other"].summary()
    assert other["content_id"] == "t-2" and other["avg_bitrate_kbps"] == 800
    assert [p.reason for p in analysis.problems] == ["not_combined_log_format"]


def test_cli_reads_a_file_and_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "access.log"
    log.write_text(_log())
    assert main(["ingest", "cmcd-log", str(log), "--json"]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["session_id"] for r in rows} == {"6e2fb550-c457-11e9-bb97-0800200c9a66", "other"}
    assert "startup time" in err and "1 unreadable lines" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO(_log()))
    assert main(["ingest", "cmcd-log", "-"]) == 0
    out, _ = capsys.readouterr()
    assert "6e2fb550-c457-11e9-bb97-0800200c9a66" in out and "2333.3" in out
