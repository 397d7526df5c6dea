"""The stream processor's session summaries agree with the stub's truth, session by session.

Feeds a stub run (with an OCA outage, so failovers and fatal errors are in it) through
`streams.sessionizer.Sessionizer` (pure, no Kafka) and compares every summary with
`truth.jsonl`'s record: the two boxes read DESIGN.md's metric definitions the same way.
"""

from __future__ import annotations

from contract.events import EVENT_ADAPTER
from contract.records import SessionSummary
from platform_stub.generator import RunOptions, StubRun
from streams.sessionizer import Sessionizer


def test_sessionizer_summaries_match_stub_truth() -> None:
    stub = StubRun(
        RunOptions(seed=41, members=3_000, rate=60.0, duration_s=1_200.0, scenario="oca_outage")
    )
    sessionizer = Sessionizer()
    summaries: dict[str, SessionSummary] = {}
    for batch in stub.batches(5_000):
        for line in batch.lines:
            applied = sessionizer.feed(EVENT_ADAPTER.validate_json(line))
            if applied.summary is not None:
                summaries[applied.summary.session_id] = applied.summary
    for summary in sessionizer.advance(1 << 60):
        summaries[summary.session_id] = summary

    truths = {t.session_id: t for t in stub.truths()}
    assert len(truths) > 500 and set(summaries) == set(truths)
    assert any(t.final_oca_id != t.oca_id for t in truths.values()), "failovers are covered"
    ratios: list[float] = []
    for sid, t in truths.items():
        s = summaries[sid]
        outcome = (
            "start_failure"
            if t.fatal_before_start
            else "started"
            if t.first_frame
            else "exit_before_start"
        )
        got = (
            s.start_outcome, s.startup_ms, s.playback_failed, s.fatal_error_code, s.exit_reason,
            s.watch_ms, s.rebuffer_ms, s.rebuffer_count, s.upshifts, s.downshifts, s.oca_id,
        )  # fmt: skip
        want = (
            outcome, t.startup_ms, t.ended_in_fatal, t.fatal_code, t.exit_reason,
            t.watch_ms, t.rebuffer_ms, t.rebuffer_count, t.upshifts, t.downshifts, t.oca_id,
        )  # fmt: skip
        assert got == want, sid
        if s.avg_bitrate_kbps and t.avg_bitrate_kbps:
            ratios.append(s.avg_bitrate_kbps / t.avg_bitrate_kbps)
    # Bitrate is weighted by event time there and by play time here (pauses and seeks
    # differ slightly), so it agrees closely rather than exactly.
    ratios.sort()
    assert abs(ratios[len(ratios) // 2] - 1) < 0.005
    assert ratios[0] > 0.9 and ratios[-1] < 1.1
