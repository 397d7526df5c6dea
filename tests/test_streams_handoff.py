"""The handoff of forwarded events from the validate agent to the qoe agent."""

from __future__ import annotations

from contract.events import EVENT_ADAPTER
from streams.enrichment import Catalog
from streams.handoff import Handoff
from testkit.synthetic_sessions import normal_session


def test_a_hit_is_what_parsing_the_bytes_gives_and_is_taken_once() -> None:
    handoff = Handoff()
    events = [Catalog().enrich(e) for e in normal_session("s-1")]
    values = [e.model_dump_json().encode() for e in events]
    for value, event in zip(values, events, strict=True):
        handoff.put(value, event)
    for value in values:
        assert handoff.take(value) == EVENT_ADAPTER.validate_json(value)
        assert handoff.take(value) is None  # taken: a redelivery is parsed
    assert (handoff.hits, handoff.misses) == (len(values), len(values))


def test_the_oldest_go_first_beyond_capacity() -> None:
    handoff = Handoff(capacity=2)
    events = list(normal_session("s-2"))[:3]
    values = [e.model_dump_json().encode() for e in events]
    for value, event in zip(values, events, strict=True):
        handoff.put(value, event)
    assert handoff.take(values[0]) is None
    assert handoff.take(values[1]) == events[1]
    assert handoff.take(values[2]) == events[2]
