"""The contract package holds together: dimensions, column sources, topic names."""

from __future__ import annotations

from pathlib import Path

from contract.deadletter import DeadLetter
from contract.dimensions import CAUSE_PRIORITY, DIMENSION_LABELS, DIMENSIONS
from contract.events import Device, Network
from contract.records import Incident, MinuteCounts, MinuteRollup, SessionSummary
from contract.tables import TABLE_BY_NAME
from streams.progress import changelog
from streamwatch import topics
from streamwatch.settings import Settings

ROOT = Path(__file__).resolve().parent.parent

# Each table's record fields (a rollup's nested `counts` are lifted one level when flattened).
_FIELDS = {
    "sessions": set(SessionSummary.model_fields),
    "qoe_minute": set(MinuteRollup.model_fields) | set(MinuteCounts.model_fields),
    "incidents": set(Incident.model_fields),
    "deadletters": set(DeadLetter.model_fields),
}


def test_package_docstrings_are_the_agreed_lines() -> None:
    assert (ROOT / "contract" / "__init__.py").read_text().splitlines() == [
        '"""What crosses the boxes of the data flow, defined once and imported everywhere."""'
    ]
    assert (ROOT / "testkit" / "__init__.py").read_text().splitlines() == [
        '"""Builders of test and sample data; never imported by production code."""'
    ]


def test_every_rollup_dimension_is_a_session_field_and_an_envelope_field() -> None:
    envelope = set(Device.model_fields) | set(Network.model_fields) | {"title_id"}
    for name in DIMENSIONS:
        assert name in SessionSummary.model_fields, name
        assert name in envelope, name
        assert name in DIMENSION_LABELS
    assert sorted(CAUSE_PRIORITY) == sorted(DIMENSIONS)
    assert "dimension" in TABLE_BY_NAME["qoe_minute"].column_names


def test_every_column_source_names_a_field_of_its_record() -> None:
    checked = 0
    for table, fields in _FIELDS.items():
        for column in TABLE_BY_NAME[table].columns:
            if column.source:
                assert column.source in fields, (table, column)
                checked += 1
    events = [c for c in TABLE_BY_NAME["events"].columns if c.source]
    assert all(c.source and c.source.startswith("payload.") for c in events)
    assert checked == 4 and len(events) == 6


def test_the_checkpoints_changelog_is_the_workers() -> None:
    settings = Settings(topic_prefix="t-contract-")
    assert settings.topic(topics.STREAMS_CHECKPOINTS_CHANGELOG) == changelog(
        settings, "checkpoints"
    )
