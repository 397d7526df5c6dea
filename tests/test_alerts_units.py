"""Pure logic of the alerts box: rules schema, rule engine, delivery queue, bodies, routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.cli import parse_duration, parse_time
from alerts.delivery import DeliveryQueue, outcome_of
from alerts.engine import RuleEngine
from alerts.metrics import MINUTE_METRICS, RULE_METRICS
from alerts.minutes import MinuteAssembler
from alerts.receivers import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
    request_for,
)
from alerts.records import Ack, Alert, Delivery, Notification, Silence
from alerts.routing import notifications_for
from alerts.rules import RateLimit, RuleSet, load_rules, parse_rules
from contract.records import Incident, MinuteCounts, MinuteRollup
from indexers.retry import RetryPolicy
from streamwatch.errors import ConfigurationError

T0 = datetime(2026, 3, 4, 1, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def _rules(body: str) -> RuleSet:
    return parse_rules("version = 1\n" + body)


THRESHOLD = """
[[rules]]
name = "av"
kind = "threshold"
metric = "playback_failure_pct"
dimension = "app_version"
threshold = 2.0
for_minutes = 3
min_cohort = 50
above_rest = 2.0
severity = "critical"
runbook = "docs/runbooks.md#av"
"""


def _minute(
    bad: dict[str, tuple[int, int]], rest: tuple[int, int] = (1000, 5)
) -> dict[tuple[str, str], MinuteCounts]:
    """{app_version: (active, failed)} plus the rest of the traffic, and the total."""
    values: dict[tuple[str, str], MinuteCounts] = {}
    total = MinuteCounts(active_sessions=rest[0], failed_sessions=rest[1])
    for v, (n, k) in bad.items():
        values[("app_version", v)] = MinuteCounts(active_sessions=n, failed_sessions=k)
        total.merge_in(values[("app_version", v)])
    values[("all", "all")] = total
    return values


# -- rules ------------------------------------------------------------------------------


def test_shipped_rules_load_and_cover_the_issue_examples() -> None:
    rs = load_rules()
    kinds = {r.kind for r in rs.rules}
    assert kinds == {"threshold", "change", "incident"}
    names = {r.name for r in rs.rules}
    assert {"app-version-playback-failures", "region-startup-p95", "qoe-anomaly"} <= names
    assert "concurrent-viewers-drop-wow" in names
    for r in rs.rules:
        assert r.runbook and r.severity
    assert rs.receiver_names() == {"pagerduty", "alertmanager", "webhook", "slack"}


def test_every_minute_metric_of_the_shared_definitions_can_be_watched() -> None:
    assert set(MINUTE_METRICS) <= set(RULE_METRICS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (THRESHOLD.replace("playback_failure_pct", "fun_pct"), "unknown metric 'fun_pct'"),
        (THRESHOLD.replace('"app_version"', '"planet"'), "unknown dimension 'planet'"),
        (THRESHOLD + "colour = 'red'\n", "colour"),
        (THRESHOLD + THRESHOLD, "unique: av"),
        (THRESHOLD.replace('severity = "critical"', 'severity = "meh"'), "severity"),
        ("[[rules]\n", "not valid TOML"),
        (THRESHOLD.replace('"app_version"', '"all"'), "above_rest needs a dimension"),
    ],
)
def test_bad_rules_files_are_refused_with_a_clear_error(body: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        _rules(body)


def test_change_rule_needs_exactly_one_direction() -> None:
    body = """
[[rules]]
name = "cv"
kind = "change"
metric = "concurrent_viewers"
severity = "critical"
runbook = "x"
"""
    with pytest.raises(ConfigurationError, match="exactly one of drop_pct and rise_pct"):
        _rules(body)


# -- engine ---------------------------------------------------------------------------


def test_threshold_fires_once_after_its_duration_and_resolves_after_healthy_minutes() -> None:
    engine = RuleEngine(_rules(THRESHOLD))
    out: list[Alert] = []
    bad = {"5.4.2": (100, 8), "5.4.1": (100, 1)}
    for i in range(5):
        out += engine.on_minute(T0 + i * MIN, _minute(bad))
    assert [(a.status, a.value, a.fired_at) for a in out] == [("firing", "5.4.2", T0 + 3 * MIN)]
    assert out[0].started_at == T0 and out[0].observed == 8.0
    assert out[0].runbook == "docs/runbooks.md#av"
    for i in range(5, 7):
        out += engine.on_minute(T0 + i * MIN, _minute({"5.4.2": (100, 0)}))
    assert [a.status for a in out] == ["firing", "resolved"]
    assert out[1].resolved_at == T0 + 5 * MIN and out[1].key == "av|app_version=5.4.2"


def test_threshold_needs_the_cohort_the_duration_and_to_stand_out() -> None:
    engine = RuleEngine(_rules(THRESHOLD))
    out: list[Alert] = []
    for i in range(6):
        # small cohort; a blip of two minutes; everyone failing alike (not "on one version")
        out += engine.on_minute(T0 + i * MIN, _minute({"tiny": (10, 5)}))
    for i in range(6, 8):
        out += engine.on_minute(T0 + i * MIN, _minute({"blip": (100, 9)}))
    out += engine.on_minute(T0 + 8 * MIN, _minute({}))
    for i in range(9, 14):
        out += engine.on_minute(T0 + i * MIN, _minute({"same": (100, 5)}, rest=(1000, 50)))
    assert out == []


def test_a_value_that_goes_quiet_counts_as_healthy() -> None:
    engine = RuleEngine(_rules(THRESHOLD))
    out: list[Alert] = []
    for i in range(3):
        out += engine.on_minute(T0 + i * MIN, _minute({"x": (100, 9)}))
    for i in range(3, 5):
        out += engine.on_minute(T0 + i * MIN, _minute({}))
    assert [a.status for a in out] == ["firing", "resolved"]


def test_change_rule_compares_with_the_same_minute_last_week() -> None:
    rs = _rules("""
[[rules]]
name = "cv"
kind = "change"
metric = "concurrent_viewers"
drop_pct = 30.0
for_minutes = 2
severity = "critical"
runbook = "x"
""")
    engine = RuleEngine(rs)
    week = timedelta(days=7)
    out: list[Alert] = []
    for i in range(4):
        out += engine.on_minute(
            T0 - week + i * MIN, {("all", "all"): MinuteCounts(concurrent_viewers=1000)}
        )
    viewers = [800, 650, 600, 990]  # -20 % (fine), -35 %, -40 % (fires), back to normal
    for i, v in enumerate(viewers):
        out += engine.on_minute(T0 + i * MIN, {("all", "all"): MinuteCounts(concurrent_viewers=v)})
    assert [(a.status, a.fired_at) for a in out] == [("firing", T0 + 3 * MIN)]
    assert out[0].threshold == pytest.approx(700.0)


def _incident(iid: str, status: str, value: str = "oca-1", revision: int = 0) -> Incident:
    return Incident(
        incident_id=iid,
        status=status,  # type: ignore[arg-type]
        revision=revision,
        metric="start_failure_pct",
        dimension="oca_id",
        value=value,
        started_at=T0,
        detected_at=T0 + MIN,
        last_anomalous_at=T0 + 3 * MIN,
        resolved_at=T0 + 6 * MIN if status == "resolved" else None,
        observed=40.0,
        expected=1.0,
        affected_sessions=12,
        severity="major",
        explanation="start_failure_pct 40 vs 1 for oca_id=oca-1",
    )


def test_incidents_on_one_value_are_one_alert_until_all_resolve() -> None:
    rs = _rules(
        '[[rules]]\nname = "qoe"\nkind = "incident"\nseverity = "critical"\nrunbook = "r"\n'
    )
    engine = RuleEngine(rs)
    out = engine.on_incident(_incident("a", "open"))
    out += engine.on_incident(_incident("b", "open"))
    out += engine.on_incident(_incident("a", "open", revision=1))
    out += engine.on_incident(_incident("a", "resolved", revision=2))
    assert [a.status for a in out] == ["firing"]
    out += engine.on_incident(_incident("b", "resolved", revision=1))
    assert [(a.status, a.key) for a in out] == [
        ("firing", "qoe|oca_id=oca-1"),
        ("resolved", "qoe|oca_id=oca-1"),
    ]
    assert out[0].incident_ids == ("a",) and out[1].resolved_at == T0 + 6 * MIN


def test_incident_rule_filters_by_severity() -> None:
    rs = _rules(
        '[[rules]]\nname = "qoe"\nkind = "incident"\nmin_incident_severity = "critical"\n'
        'severity = "critical"\nrunbook = "r"\n'
    )
    assert RuleEngine(rs).on_incident(_incident("a", "open")) == []


# -- routing, bodies ---------------------------------------------------------------------


def _alert(status: str = "firing") -> Alert:
    return Alert(
        key="av|app_version=5.4.2",
        rule="av",
        kind="threshold",
        status=status,  # type: ignore[arg-type]
        severity="critical",
        metric="playback_failure_pct",
        dimension="app_version",
        value="5.4.2",
        started_at=T0,
        fired_at=T0 + 3 * MIN,
        resolved_at=T0 + 9 * MIN if status == "resolved" else None,
        observed=8.0,
        threshold=2.0,
        summary="Playback failing on app version 5.4.2",
        runbook="docs/runbooks.md#av",
    )


ROUTES = """
[[routes]]
name = "page"
severities = ["critical"]
receivers = ["pagerduty", "webhook", "nowhere"]
continue = true

[[routes]]
name = "chat"
receivers = ["slack", "webhook"]
rate_limit = { max = 2, per_s = 60 }
"""


def test_routes_continue_and_each_receiver_gets_an_alert_once() -> None:
    rs = _rules(THRESHOLD + ROUTES)
    receivers: dict[str, Receiver] = {
        "pagerduty": PagerDutyReceiver(kind="pagerduty", routing_key="k"),  # type: ignore[arg-type]
        "webhook": WebhookReceiver(kind="webhook", url="http://h/w"),
        "slack": SlackReceiver(kind="slack", url="http://h/s"),
    }
    notes, missing = notifications_for(_alert(), rs, receivers, T0)
    assert [(n.route, n.receiver) for n in notes] == [
        ("page", "pagerduty"),
        ("page", "webhook"),
        ("chat", "slack"),
    ]
    assert missing == ["nowhere"]
    again, _ = notifications_for(_alert(), rs, receivers, T0 + MIN)
    assert [n.notification_id for n in again] == [n.notification_id for n in notes]
    resolved, _ = notifications_for(_alert("resolved"), rs, receivers, T0)
    assert not {n.notification_id for n in resolved} & {n.notification_id for n in notes}


def _note(receiver: str = "webhook", status: str = "firing", route: str = "page") -> Notification:
    a = _alert(status)
    return Notification(
        notification_id=Notification.make_id(a, receiver),
        alert=a,
        route=route,
        receiver=receiver,
        created_at=T0,
    )


def test_bodies_for_each_receiver_kind() -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    n = _note()
    url, body, headers = request_for(WebhookReceiver(kind="webhook", url="http://h/w"), n, "L", now)
    assert url == "http://h/w" and headers["Idempotency-Key"] == n.notification_id
    assert body["status"] == "firing" and body["alert"]["value"] == "5.4.2"

    _, slack, _ = request_for(SlackReceiver(kind="slack", url="http://h/s"), n, "L", now)
    assert "5.4.2" in slack["text"] and slack["attachments"][0]["color"] == "danger"

    pd = PagerDutyReceiver(kind="pagerduty", routing_key="secret")  # type: ignore[arg-type]
    url, trig, _ = request_for(pd, n, "L", now)
    assert url == "https://events.pagerduty.com/v2/enqueue"
    assert trig["event_action"] == "trigger" and trig["routing_key"] == "secret"
    assert trig["payload"]["severity"] == "critical" and trig["payload"]["source"]
    _, res, _ = request_for(pd, _note(status="resolved"), "L", now)
    assert res["event_action"] == "resolve" and res["dedup_key"] == trig["dedup_key"]

    am = AlertmanagerReceiver(kind="alertmanager", url="http://am:9095/")
    url, fired, _ = request_for(am, n, "L", now)
    assert url == "http://am:9095/api/v2/alerts"
    assert fired[0]["labels"] == {
        "alertname": "av",
        "severity": "critical",
        "dimension": "app_version",
        "value": "5.4.2",
        "metric": "playback_failure_pct",
        "source": "streamwatch",
    }
    assert fired[0]["endsAt"] > now.isoformat()[:10]
    _, gone, _ = request_for(am, _note(status="resolved"), "L", now)
    assert gone[0]["endsAt"] == "2026-03-04T01:09:00Z"


# -- delivery queue --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _queue(clock: Clock, limits: dict[str, RateLimit] | None = None) -> DeliveryQueue:
    policy = RetryPolicy(initial_s=1.0, max_s=8.0, jitter=0.0)
    return DeliveryQueue(policy, limits or {}, clock)


def _log(n: Notification, outcome: str, attempt: int = 0, status: int | None = None) -> Delivery:
    return Delivery(
        notification_id=n.notification_id,
        receiver=n.receiver,
        route=n.route,
        alert_key=n.alert.key,
        status=n.alert.status,
        outcome=outcome,  # type: ignore[arg-type]
        attempt=attempt,
        at=T0,
        http_status=status,
    )


def test_outcomes_of_http_answers() -> None:
    assert [outcome_of(s) for s in (200, 202, 400, 404, 408, 429, 500, 503, None)] == [
        "delivered", "delivered", "rejected", "rejected", "failed", "failed", "failed",
        "failed", "failed",
    ]  # fmt: skip


def test_a_receiver_gets_its_notifications_in_order_and_retries_back_off() -> None:
    clock = Clock()
    q = _queue(clock)
    firing, resolved, other = _note(), _note(status="resolved"), _note("slack")
    for n in (firing, resolved, other):
        assert q.add(n)
    assert not q.add(firing)  # dedupe by id
    due = q.due(T0)
    assert [d.notification.notification_id for d in due] == [
        firing.notification_id,
        other.notification_id,
    ]
    q.record(_log(firing, "failed", 0))
    q.record(_log(other, "delivered", 0, 200))
    assert q.due(T0) == []  # backing off; the resolved must not overtake its firing
    clock.t = 1.0
    assert [d.attempt for d in q.due(T0)] == [1]
    q.record(_log(firing, "failed", 1))
    clock.t = 2.5
    assert q.due(T0) == []  # second retry waits 2 s
    clock.t = 3.0
    q.record(_log(firing, "delivered", 2, 200))
    assert [d.notification.notification_id for d in q.due(T0)] == [resolved.notification_id]
    assert q.next_wake(5.0) == 0.0


def test_the_log_read_back_after_a_restart_leaves_only_what_is_owed() -> None:
    clock = Clock()
    sent, owed = _note(), _note(status="resolved")
    q = _queue(clock)
    q.record(_log(sent, "delivered", 3, 200))  # the log can be read before the outbox
    q.add(sent)
    q.add(owed)
    assert [n.notification_id for n in q.pending()] == [owed.notification_id]


def test_rate_limit_per_route_delays_and_never_drops() -> None:
    clock = Clock()
    q = _queue(clock, {"chat": RateLimit(max=1, per_s=10)})
    a = _note("slack", route="chat")
    b = _note("slack", status="resolved", route="chat")
    q.add(a)
    q.add(b)
    (d,) = q.due(T0)
    q.sent("chat")
    q.record(_log(d.notification, "delivered", 0, 200))
    assert q.due(T0) == []
    clock.t = 10.0
    assert [x.notification.notification_id for x in q.due(T0)] == [b.notification_id]


def test_silences_and_acks_close_notifications_without_sending() -> None:
    clock = Clock()
    q = _queue(clock)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    firing = _note()
    q.add(firing)
    q.apply(
        Silence(
            silence_id="s1", rule="av", value="5.4.2", starts_at=now - MIN, ends_at=now + MIN,
            by="ana", at=now,
        )
    )  # fmt: skip
    (d,) = q.due(now)
    assert d.outcome == "silenced"
    assert q.due(now + 2 * MIN)[0].outcome is None  # the silence ended
    q.apply(Ack(alert_key=firing.alert.key, by="bo", at=now))
    assert q.due(now + 2 * MIN)[0].outcome == "acknowledged"
    q.record(_log(firing, "acknowledged"))
    resolved = _note(status="resolved")
    q.add(resolved)
    assert q.due(now + 2 * MIN)[0].outcome is None  # resolved still goes out


# -- minutes, CLI parsing ------------------------------------------------------------------


def test_minutes_are_judged_after_the_grace_with_partials_summed() -> None:
    asm = MinuteAssembler(grace_minutes=1)

    def r(start: datetime, partial: str, plays: int, revision: int = 0) -> MinuteRollup:
        return MinuteRollup.of(
            window_start=start, window_end=start + MIN, dimension="all", value="all",
            partial=partial, counts=MinuteCounts(plays=plays), revision=revision,
        )  # fmt: skip

    asm.add(r(T0, "p0", 5))
    asm.add(r(T0, "p1", 7))
    asm.add(r(T0, "p1", 8, revision=1))
    assert asm.ready() == []
    asm.add(r(T0 + MIN, "p0", 1))
    ((start, values),) = asm.ready()
    assert start == T0 and values[("all", "all")].plays == 13
    asm.add(r(T0, "p2", 100))
    assert asm.too_late == 1


def test_a_partition_running_ahead_does_not_get_minutes_judged_early() -> None:
    asm = MinuteAssembler(grace_minutes=1)

    def r(start: datetime, partial: str) -> MinuteRollup:
        return MinuteRollup.of(
            window_start=start, window_end=start + MIN, dimension="all", value="all",
            partial=partial, counts=MinuteCounts(plays=1),
        )  # fmt: skip

    for i in range(5):
        asm.add(r(T0 + i * MIN, "p0"), partition=0)
    asm.add(r(T0, "p1"), partition=1)
    assert asm.ready() == []  # partition 1 still has records to give for later minutes
    judged = asm.ready(idle=frozenset({1}))  # partition 1 has nothing more for now
    assert [m for m, _ in judged] == [T0 + i * MIN for i in range(4)]
    assert judged[0][1][("all", "all")].plays == 2
    asm.add(r(T0 + 4 * MIN, "p1"), partition=1)
    assert [m for m, _ in asm.ready()] == []  # already judged up to T0 + 3 min


def test_durations_and_times() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("2h") == timedelta(hours=2)
    now = datetime(2026, 3, 10, tzinfo=UTC)
    assert parse_time("7d", now) == datetime(2026, 3, 3, tzinfo=UTC)
    assert parse_time("2026-03-04T01:00Z") == datetime(2026, 3, 4, 1, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(ConfigurationError, match="not a time"):
        parse_time("yesterday-ish")


# -- backtest scoring --------------------------------------------------------------------


def test_backtest_scores_hits_misses_false_alarms_and_time_to_fire() -> None:
    from alerts import backtest
    from platform_stub.scenarios import ScenarioTruth

    rs = _rules(THRESHOLD)
    minutes = []
    for i in range(30):
        bad = {"5.4.2": (100, 9)} if 5 <= i < 10 else {}
        if 20 <= i < 25:
            bad = {"6.0.0": (100, 9)}  # a fault nobody planted: a false alarm
        minutes.append((T0 + i * MIN, _minute(bad)))
    run = backtest.replay(rs, iter(minutes))
    ms = int((T0 + 5 * MIN).timestamp() * 1000)
    truth = ScenarioTruth(
        "bad_app_release", 1, None, None, ms, ms + 300_000, "device.app_version", "5.4.2", None
    )
    other = ScenarioTruth(
        "bad_app_release", 2, None, None, ms, ms + 300_000, "device.app_version", "7.0", None
    )
    scores = backtest.score(rs, run, [truth, other])
    s = scores["av"]
    assert (s.fired, s.hits, s.misses, s.false_alarms) == (2, 1, 1, 1)
    assert s.time_to_fire == [timedelta(minutes=3)]
    text = backtest.report(rs, run, scores)
    assert "av " in text and "3m00s / 3m00s" in text and "app_version=6.0.0" in text
    data = backtest.as_json(run, scores)
    assert data["scores"]["av"]["time_to_fire_s"] == [180.0] and len(data["alerts"]) == 2
