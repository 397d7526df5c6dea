"""POST /v1/cmcd against real Kafka: what real players sent, and malformed CMCD.

The bodies under tests/data/cmcd/ were captured from hls.js 1.7.4 and dash.js 5.2.1 playing
in Chromium (see its README). Every report of them must become events in the raw topic.
Each malformed body gets a 4xx with a reason and a dead letter, the collector stays up, and
the valid lines of a partly bad body still reach Kafka.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer

from contract.deadletter import DeadLetter
from contract.events import EVENT_ADAPTER
from ingest.collector import serve
from streamwatch import topics
from streamwatch.settings import Settings
from tests.test_ingest_collector import consume

pytestmark = pytest.mark.integration

DATA = Path(__file__).parent / "data" / "cmcd"
CMCD = {"Content-Type": "application/cmcd"}


def _cmcd_settings(settings: Settings) -> Settings:
    # The captures are days old: keep their own clock instead of clamping it.
    return settings.model_copy(
        update={"cmcd_member_key": "sw-member", "allowed_clock_skew_s": 10 * 365 * 86400.0}
    )


async def _post(http: aiohttp.ClientSession, body: bytes, headers: dict[str, str] = CMCD) -> Any:
    async with http.post("/v1/cmcd", data=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_real_player_bodies_become_events_in_kafka(
    settings: Settings, kafka_bootstrap: str
) -> None:
    captures = sorted(DATA.glob("*.txt"))
    assert len(captures) >= 6, "captured player bodies are missing from tests/data/cmcd"
    answers: dict[str, dict[str, Any]] = {}
    async with serve(_cmcd_settings(settings)) as url, aiohttp.ClientSession(base_url=url) as http:
        for capture in captures:
            # As the players sent them: one report per request (batch size 1).
            total: Counter[str] = Counter()
            for line in capture.read_bytes().splitlines():
                status, answer = await _post(http, line + b"\n")
                assert status == 200, (capture.name, line, answer)
                assert answer["rejected"] == []
                total.update({k: answer[k] for k in ("accepted", "events", "ignored")})
            answers[capture.name] = dict(total)
        # Sent again (a player retrying after a lost answer): duplicates, no new events.
        status, again = await _post(http, captures[0].read_bytes())
        assert status == 200 and again["events"] == 0 and again["duplicates"] > 0

    for name, counts in answers.items():
        lines = len(DATA.joinpath(name).read_bytes().splitlines())
        assert counts["accepted"] == lines, name
    by_session: dict[str, list[Any]] = {}
    want_events = sum(t["events"] for t in answers.values())
    found = await _raw_events_of(
        settings,
        kafka_bootstrap,
        lambda event: str(event.get("session_id", "")).startswith("capture-"),
        want_events,
    )
    seen = {event["event_id"]: event for event in found}
    assert len(seen) == want_events
    for event in seen.values():
        EVENT_ADAPTER.validate_python(event)
        by_session.setdefault(event["session_id"], []).append(event)

    def types(sid: str) -> Counter[str]:
        return Counter(e["event_type"] for e in by_session[sid])

    hls = types("capture-hls-throttled")
    assert hls["play_requested"] == 1 and hls["first_frame"] == 1
    assert hls["rebuffer_start"] == hls["rebuffer_end"] == 2
    assert hls["bitrate_change"] >= 1 and hls["playback_end"] == 1
    assert {e["member_id"] for e in by_session["capture-hls-throttled"]} == {"member-capture-1"}
    dash = types("capture-dash-throttled")
    assert dash["rebuffer_end"] == 2  # dash.js reports its stalls as `w` after `p`
    assert dash["bitrate_change"] == 1  # derived from `br`: dash.js sends no `bc`
    page = json.loads(DATA.joinpath("dashjs-5.2.1-throttled.page.json").read_text())
    stalled = sum(
        e["payload"]["duration_ms"]
        for e in by_session["capture-dash-throttled"]
        if e["event_type"] == "rebuffer_end"
    )
    assert abs(stalled - page["rebufferMs"]) <= 0.05 * page["rebufferMs"]
    # What CMCD cannot tell is marked unknown, not invented.
    dash_error = next(e for e in by_session["capture-dash-fatal404"] if e["event_type"] == "error")
    assert dash_error["payload"]["code"] == "27"
    assert "payload.severity" in dash_error["unknown_facts"]
    assert all(e["member_id"] == "anonymous" for e in by_session["capture-dash-fatal404"])
    assert all("network.isp" in e["unknown_facts"] for e in seen.values())


def _marker() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


async def test_malformed_cmcd_is_refused_with_a_reason_and_dead_lettered(
    settings: Settings, kafka_bootstrap: str
) -> None:
    cases: dict[str, tuple[bytes, dict[str, str], int, str]] = {}
    m = _marker()
    cases[m] = (f'e=t,sid="{m}",ts="soon"\n'.encode(), CMCD, 400, "cmcd_invalid_value")
    m = _marker()
    cases[m] = (f'e=t,sid="{m},ts=1\n'.encode(), CMCD, 400, "cmcd_syntax")
    m = _marker()
    cases[m] = (f'e=t,sid="{m}",ts=1\n'.encode() * 700_000, CMCD, 413, "body_too_large")
    m = _marker()
    cases[m] = (f'e=t,sid="{m}",ts=1,x="\xff\xfe"\n'.encode("latin-1"), CMCD, 400, "invalid_utf8")
    m = _marker()
    cases[m] = (f'e=t,sid="{m}",sn=1,ts=1\n'.encode() * 100_000, CMCD, 413, "too_many_events")
    m = _marker()
    cases[m] = (
        f'e=t,sid="{m}",ts=1\n'.encode(),
        {"Content-Type": "application/json"},
        415,
        "unsupported_media_type",
    )
    assert len(cases[next(k for k in cases if cases[k][3] == "body_too_large")][0]) > 10_000_000

    async with serve(settings) as url, aiohttp.ClientSession(base_url=url) as http:
        for marker, (body, headers, want_status, want_reason) in cases.items():
            status, answer = await _post(http, body, headers)
            assert (status, answer["error"]) == (want_status, want_reason), (marker, answer)
            assert answer["detail"]
        async with http.get("/healthz") as resp:
            assert resp.status == 200  # still up

    def marker_in(value: bytes) -> str:
        original = DeadLetter.model_validate_json(value).original
        for marker in cases:
            if marker.encode() in original:
                return marker
        return ""

    letters = await consume(
        kafka_bootstrap, settings.topic(topics.DEADLETTER), set(cases), marker_in
    )
    assert set(letters) == set(cases)
    for marker, (_, value) in letters.items():
        assert DeadLetter.model_validate_json(value).reason == cases[marker][3]


async def test_good_lines_of_a_partly_bad_body_reach_kafka(
    settings: Settings, kafka_bootstrap: str
) -> None:
    sid, bad = f"s-{uuid.uuid4().hex[:10]}", _marker()
    ts = 1_795_974_429_000
    lines = [
        f'cid="t-9",e=ps,sid="{sid}",sn=0,sta=s,ts={ts}',
        f'e=ps,sid="{bad}",sta=zz,ts={ts}',  # unknown player state
        f'br=(3000),e=ps,sid="{sid}",sn=1,sta=p,ts={ts + 800}',
        f'sid="{bad}-2",e=t,ts={ts}\xff'.encode("latin-1").decode("latin-1"),
        f'bl=(9000),br=(3000),e=t,mtp=(20000),sid="{sid}",sn=2,sta=p,ts={ts + 2000}',
    ]
    body = "\n".join(lines).encode("latin-1")
    async with (
        serve(_cmcd_settings(settings)) as url,
        aiohttp.ClientSession(base_url=url) as http,
    ):
        status, answer = await _post(http, body)
    assert status == 200, answer
    assert answer["accepted"] == 3 and answer["events"] == 3
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [
        (1, "cmcd_invalid_value"),
        (3, "invalid_utf8"),
    ]
    raw = await consume(
        kafka_bootstrap,
        settings.topic(topics.RAW),
        {"play_requested", "first_frame", "heartbeat"},
        lambda v: json.loads(v)["event_type"] if json.loads(v)["session_id"] == sid else "",
    )
    assert set(raw) == {"play_requested", "first_frame", "heartbeat"}
    heartbeat = json.loads(raw["heartbeat"][1])
    assert heartbeat["payload"]["buffer_ms"] == 9000
    assert heartbeat["title_id"] == "t-9"  # remembered from the session's first report
    letters = await consume(
        kafka_bootstrap,
        settings.topic(topics.DEADLETTER),
        {bad},
        lambda v: bad if bad.encode() in DeadLetter.model_validate_json(v).original else "",
    )
    assert bad in letters


async def _raw_events_of(
    settings: Settings, bootstrap: str, keep: Callable[[dict[str, Any]], bool], want: int
) -> list[Any]:
    """The raw topic's events that `keep` picks, read from the start until `want` are found."""
    consumer = AIOKafkaConsumer(
        settings.topic(topics.RAW),
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    found: list[Any] = []
    await consumer.start()
    try:
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for rec in records:
                    event = json.loads(rec.value or b"{}")
                    if keep(event):
                        found.append(event)
            if len(found) >= want:
                break
    finally:
        await consumer.stop()
    return found


async def test_reports_of_one_session_in_flight_together_keep_their_order(
    settings: Settings, kafka_bootstrap: str
) -> None:
    # Players POST each report as it happens without waiting for the previous answer, so a
    # state change often arrives while the one before it is still being written to Kafka.
    # Each report's events depend on the session's previous state: in flight together they
    # must give what the same reports give one after another.
    lines = DATA.joinpath("hlsjs-1.7.4-throttled.txt").read_bytes().splitlines()
    run = uuid.uuid4().hex[:8]

    def as_session(sid: str) -> list[bytes]:
        return [line.replace(b'"capture-hls-throttled"', f'"{sid}"'.encode()) for line in lines]

    sequential, overlapped = f"seq-{run}", f"ovl-{run}"
    async with serve(_cmcd_settings(settings)) as url, aiohttp.ClientSession(base_url=url) as http:
        sent = 0
        for line in as_session(sequential):
            status, answer = await _post(http, line + b"\n")
            assert status == 200
            sent += answer["events"]
        in_flight = []
        for line in as_session(overlapped):
            in_flight.append(asyncio.ensure_future(_post(http, line + b"\n")))
            await asyncio.sleep(0.002)  # a few ms apart, as a player's state changes come
        answers = await asyncio.gather(*in_flight)
    assert all(status == 200 for status, _ in answers)
    want = sent + sum(answer["events"] for _, answer in answers)
    events = await _raw_events_of(
        settings, kafka_bootstrap, lambda e: e.get("session_id") in {sequential, overlapped}, want
    )

    def shape(sid: str) -> Counter[str]:
        return Counter(e["event_type"] for e in events if e["session_id"] == sid)

    assert shape(sequential)["rebuffer_start"] == 2
    assert shape(overlapped) == shape(sequential)


def _session_reports() -> tuple[str, list[bytes]]:
    """A new session: its id, and its requested, first frame, stall start and stall end as
    sn 0-3."""
    sid = f"s-{uuid.uuid4().hex[:10]}"
    ts = 1_795_974_429_000
    return sid, [
        f'cid="t-9",e=ps,sid="{sid}",sn=0,sta=s,ts={ts}'.encode(),
        f'br=(3000),e=ps,sid="{sid}",sn=1,sta=p,ts={ts + 800}'.encode(),
        f'e=ps,sid="{sid}",sn=2,sta=r,ts={ts + 5000}'.encode(),
        f'e=ps,sid="{sid}",sn=3,sta=p,ts={ts + 6500}'.encode(),
    ]


async def test_a_report_that_overtakes_the_one_before_waits_for_it(
    settings: Settings, kafka_bootstrap: str
) -> None:
    # The stall's end (sn 3) arrives before its start (sn 2): read first, it would find the
    # session playing, make no event, and sn 2 would then be refused as already seen.
    sid, (first, second, stall, unstall) = _session_reports()
    patient = _cmcd_settings(settings).model_copy(update={"cmcd_reorder_wait_s": 10.0})
    async with serve(patient) as url, aiohttp.ClientSession(base_url=url) as http:
        for report in (first, second):
            assert (await _post(http, report))[0] == 200
        ahead = asyncio.ensure_future(_post(http, unstall))
        await asyncio.sleep(0.3)
        assert not ahead.done(), "sn 3 was answered before sn 2 arrived"
        behind = await _post(http, stall)
        overtaking = await ahead
    assert behind[0] == overtaking[0] == 200
    assert (behind[1]["events"], overtaking[1]["events"]) == (1, 1)
    events = await _raw_events_of(settings, kafka_bootstrap, lambda e: e["session_id"] == sid, 4)
    assert sorted(e["event_type"] for e in events) == [
        "first_frame", "play_requested", "rebuffer_end", "rebuffer_start",
    ]  # fmt: skip
    end = next(e for e in events if e["event_type"] == "rebuffer_end")
    assert end["payload"]["duration_ms"] == 1500


async def test_a_report_later_than_the_wait_is_dead_lettered_as_out_of_order(
    settings: Settings, kafka_bootstrap: str
) -> None:
    sid, (first, second, stall, unstall) = _session_reports()
    hasty = _cmcd_settings(settings).model_copy(update={"cmcd_reorder_wait_s": 0.2})
    async with serve(hasty) as url, aiohttp.ClientSession(base_url=url) as http:
        for report in (first, second, unstall):
            assert (await _post(http, report))[0] == 200  # sn 3 goes on without sn 2
        status, answer = await _post(http, stall)
    assert (status, answer["error"]) == (400, "cmcd_out_of_order"), answer
    assert "sn 2" in answer["detail"]
    letters = await consume(
        kafka_bootstrap,
        settings.topic(topics.DEADLETTER),
        {sid},
        lambda v: sid if sid.encode() in DeadLetter.model_validate_json(v).original else "",
    )
    letter = DeadLetter.model_validate_json(letters[sid][1])
    assert (letter.reason, letter.original) == ("cmcd_out_of_order", stall)
