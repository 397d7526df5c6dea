"""CMCD reports out of order: a retry is a duplicate, an earlier report arriving after a
later one is dead-lettered with its line, and a session's bodies take turns in `sn` order
while other sessions' go on (pure logic; the same through the collector and real Kafka is
in test_ingest_cmcd.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contract.deadletter import CMCD_OUT_OF_ORDER
from ingest.cmcd_batch import CmcdBatch, CmcdBody, decode_cmcd_body, read_cmcd_body
from ingest.cmcd_events import (
    SN_WINDOW,
    CmcdIdentity,
    CmcdSessions,
    CmcdTranslator,
    SeenSequence,
    SessionMemory,
)
from ingest.cmcd_turns import SessionTurns
from ingest.validation import IngestLimits

LIMITS = IngestLimits(64 * 1024, 5 * 1024 * 1024, 1000, timedelta(days=3650))
TS = 1_795_974_429_000


def _report(sn: int, sta: str = "p", kind: str = "ps") -> bytes:
    return f'e={kind},sid="s-1",sn={sn},sta={sta},ts={TS + 1000 * sn}'.encode()


def test_verdicts_of_a_sequence_with_a_gap() -> None:
    seen = SeenSequence().add(0).add(1).add(3)
    assert seen.newest == 3
    assert [seen.verdict(sn) for sn in (0, 1, 2, 3, 4, 9)] == [
        "seen", "seen", "late", "seen", "new", "new",
    ]  # fmt: skip
    # Too far back to tell a retry from a first arrival: a retry, as before.
    far = seen.add(3 + SN_WINDOW + 5)
    assert far.verdict(2) == "seen" and far.verdict(3 + SN_WINDOW + 4) == "late"


def test_a_huge_jump_in_sequence_numbers_keeps_the_window_small() -> None:
    # `sn` comes from the player; a jump of 10**15 must not build a 10**15-bit number.
    seen = SeenSequence().add(0).add(1).add(999_999_999_999_999)
    assert (seen.newest, seen.bits) == (999_999_999_999_999, 1)
    assert seen.verdict(1) == "seen" and seen.verdict(999_999_999_999_998) == "late"


@given(st.permutations(list(range(150))))
def test_every_number_is_taken_once_whatever_the_arrival_order(order: list[int]) -> None:
    seen = SeenSequence()
    taken: list[int] = []
    late: list[int] = []
    for sn in order + order:  # every report, then every report retried
        verdict = seen.verdict(sn)
        if verdict == "new":
            seen = seen.add(sn)
            taken.append(sn)
        elif verdict == "late":
            late.append(sn)
    # A number is never taken twice, and is taken or late unless it is too old to tell.
    assert len(taken) == len(set(taken))
    assert set(taken).isdisjoint(late)
    newest_when = {sn: max(order[: order.index(sn)], default=-1) for sn in order}
    for sn in order:
        if sn not in taken and newest_when[sn] - sn < SN_WINDOW:
            assert sn in late


def test_an_overtaken_report_is_dead_lettered_and_a_retry_is_a_duplicate() -> None:
    translator = CmcdTranslator(CmcdSessions(100), CmcdIdentity())
    now = datetime.now(UTC)

    def post(*reports: bytes) -> tuple[int, int, list[tuple[int, str]]]:
        batch = read_cmcd_body(b"\n".join(reports), LIMITS, 1000, now, translator)
        assert isinstance(batch, CmcdBatch)
        translator.sessions.commit(translator.updates)
        rejected = [(r.index, r.reason) for r in batch.rejected]
        return len(batch.accepted), batch.duplicates, rejected

    assert post(_report(0, "s"), _report(1, "p")) == (2, 0, [])  # play_requested, first_frame
    assert post(_report(3, "p", kind="t")) == (1, 0, [])  # sn 2 still on the way
    late = _report(2, "r")
    batch = read_cmcd_body(late, LIMITS, 1000, now, translator)
    assert isinstance(batch, CmcdBatch)
    assert [(r.reason, r.original) for r in batch.rejected] == [(CMCD_OUT_OF_ORDER, late)]
    assert "sn 2" in batch.rejected[0].detail and "after its sn 3" in batch.rejected[0].detail
    assert post(_report(3, "p", kind="t")) == (0, 1, [])  # a retry of what was taken


def test_the_sessions_of_a_body_with_their_first_sequence_numbers() -> None:
    other = b'e=t,sid="s-2",ts=1'
    body = decode_cmcd_body(b"\r\n" + _report(7) + b"\n" + other + b"\n" + _report(8), LIMITS, 10)
    assert isinstance(body, CmcdBody)
    assert body.sessions() == {"s-1": 7, "s-2": None}
    bad = decode_cmcd_body(b"e=t,sid=\n\xff\xfe", LIMITS, 10)
    assert isinstance(bad, CmcdBody) and bad.sessions() == {}
    assert [line.rejection.reason for line in bad.lines if line.rejection] == [
        "cmcd_syntax", "invalid_utf8",
    ]  # fmt: skip


def _memory_at(sn: int) -> SessionMemory:
    seen = SeenSequence()
    for n in range(sn + 1):
        seen = seen.add(n)
    return SessionMemory(sns=seen)


async def test_bodies_of_different_sessions_hold_their_turns_side_by_side() -> None:
    turns = SessionTurns(CmcdSessions(100), wait_s=30)
    async with turns.turn({"s-1": 0}):
        # Within s-1's turn (as while its body waits for Kafka), s-2's body goes on.
        async with asyncio.timeout(5):
            async with turns.turn({"s-2": 0}):
                assert len(turns) == 2
    assert len(turns) == 0


async def test_a_sessions_second_body_waits_for_the_first_to_commit() -> None:
    sessions = CmcdSessions(100)
    turns = SessionTurns(sessions, wait_s=30)
    log: list[str] = []

    async def body(name: str, sn: int, hold_s: float) -> None:
        async with turns.turn({"s-1": sn}):
            log.append(f"{name} in")
            await asyncio.sleep(hold_s)
            sessions.commit({"s-1": _memory_at(sn)})
            log.append(f"{name} out")

    # sn 1 arrives first; it waits for sn 0, which then takes its time with Kafka.
    later = asyncio.ensure_future(body("sn1", 1, 0))
    await asyncio.sleep(0.05)
    assert log == [] and len(turns) == 1
    async with asyncio.timeout(5):
        await asyncio.gather(body("sn0", 0, 0.1), later)
    assert log == ["sn0 in", "sn0 out", "sn1 in", "sn1 out"]
    assert len(turns) == 0


async def test_a_body_waits_no_longer_than_the_wait_for_a_lost_report() -> None:
    turns = SessionTurns(CmcdSessions(100), wait_s=0.1)
    async with asyncio.timeout(5):
        async with turns.turn({"s-1": 5}):  # sn 0-4 never come
            pass
    assert len(turns) == 0
