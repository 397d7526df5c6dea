"""CMCD reports out of order: a retry is a duplicate, an earlier report arriving after a
later one is dead-lettered with its line (pure logic; the collector's wait that puts
overtaken reports back in order runs against real Kafka in test_ingest_cmcd.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from contract.deadletter import CMCD_OUT_OF_ORDER
from ingest.cmcd_batch import CmcdBatch, first_position, read_cmcd_body
from ingest.cmcd_events import SN_WINDOW, CmcdIdentity, CmcdSessions, CmcdTranslator, SeenSequence
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


def test_the_first_position_of_a_body() -> None:
    assert first_position(b"\r\n" + _report(7) + b"\n" + _report(8)) == ("s-1", 7)
    assert first_position(b'e=t,sid="s-1",ts=1') is None  # no sequence number
    assert first_position(b"e=t,sid=") is None  # unreadable: the body's reader says why
    assert first_position(b"\xff\xfe") is None
    assert first_position(b"") is None
