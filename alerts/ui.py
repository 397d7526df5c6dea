"""The incidents page's silence / acknowledge control (Streamlit), writing audited actions.

Kept in the alerts box so that the dashboards only call `alert_controls(...)`. A person
must give their name: every silence and acknowledgement is recorded with who, when and why
in `ops.alert_actions.v1`, like the CLI's.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from alerts import actions
from alerts.cli import parse_duration
from alerts.records import alert_key
from alerts.rules import IncidentRule, load_rules
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings

DURATIONS = ("30m", "1h", "2h", "4h", "1d")


def keys_for(settings: Settings, dimension: str, value: str) -> list[str]:
    """Alert keys the rules could raise on this dimension value (incident rules first)."""
    ruleset = load_rules(settings.alerts_rules_file)
    incident = [r.name for r in ruleset.rules if isinstance(r, IncidentRule)]
    other = [
        r.name
        for r in ruleset.rules
        if not isinstance(r, IncidentRule) and getattr(r, "dimension", None) == dimension
    ]
    return [alert_key(name, dimension, value) for name in incident + other]


def alert_controls(settings: Settings, dimension: str, value: str) -> None:
    """Silence or acknowledge alerts on `dimension` = `value`."""
    with st.expander(f"Silence or acknowledge alerts on {dimension} = {value}"):
        try:
            active = [
                s
                for s in actions.active_silences(actions.read_actions(settings, timeout_s=5.0))
                if s.dimension in (None, dimension) and s.value in (None, value)
            ]
        except Exception as exc:  # Kafka down: say so, keep the page
            st.warning(f"Silences cannot be read right now: {exc}")
            return
        for s in active:
            st.info(
                f"Silenced until {s.ends_at:%Y-%m-%d %H:%M} UTC by {s.by}"
                + (f": {s.comment}" if s.comment else "")
                + f" (id {s.silence_id})"
            )
        by = st.text_input("Your name (recorded in the audit log)", key="alert_by")
        comment = st.text_input("Why", key="alert_comment")
        c = st.columns(2)
        duration = c[0].selectbox("Silence for", DURATIONS, index=2, key="alert_duration")
        key = c[1].selectbox("Alert to acknowledge", keys_for(settings, dimension, value))
        b = st.columns(2)
        try:
            if b[0].button(f"Silence {dimension} = {value}", key="alert_silence"):
                silence = actions.new_silence(
                    by=by,
                    duration=parse_duration(duration),
                    dimension=dimension,
                    value=value,
                    comment=comment,
                    now=datetime.now(UTC),
                )
                actions.record_action(settings, silence)
                st.success(f"Silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC")
            if b[1].button("Acknowledge", key="alert_ack"):
                ack = actions.new_ack(key, by, comment)
                actions.record_action(settings, ack)
                st.success(f"Acknowledged {ack.alert_key}")
        except StreamwatchError as exc:
            st.error(str(exc))
