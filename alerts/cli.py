"""`streamwatch alerts run|backtest|silence|unsilence|ack|log`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError

from alerts import actions
from alerts.receivers import load_receivers
from alerts.records import Ack, Expire, Silence
from alerts.rules import load_rules
from streamwatch.errors import ConfigurationError, StreamwatchError
from streamwatch.settings import Settings, get_settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '2h', '7d', '1w' -> timedelta."""
    m = _DURATION.match(text.strip())
    if m is None:
        raise ConfigurationError(f"not a duration: {text!r} (use e.g. 30m, 2h, 7d)")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A relative age ('7d': that long ago) or an ISO 8601 time (UTC if no offset)."""
    at = now or datetime.now(UTC)
    if _DURATION.match(text.strip()):
        return at - parse_duration(text)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigurationError(f"not a time: {text!r} (use 7d or 2026-03-04T01:00Z)") from exc
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _rules_path(args: argparse.Namespace, settings: Settings) -> Path | None:
    given: Path | None = getattr(args, "rules", None)
    return given or settings.alerts_rules_file


def _cmd_run(args: argparse.Namespace) -> int:
    from alerts.service import Notifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    ruleset = load_rules(_rules_path(args, settings))
    receivers = load_receivers(args.receivers, settings)
    notifier = Notifier(settings, ruleset, receivers)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await notifier.run(stop)

    print(
        f"alerts: {len(ruleset.rules)} rules, receivers {', '.join(sorted(receivers))}",
        flush=True,
    )
    try:
        asyncio.run(main())
    except KafkaError as exc:
        raise StreamwatchError(f"Kafka unreachable at {settings.bootstrap_servers}: {exc}") from exc
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from alerts import backtest
    from indexers.warehouse_reader import connect_readonly

    settings = get_settings()
    ruleset = load_rules(args.rules)
    since = parse_time(args.since)
    until = parse_time(args.until) if args.until else datetime.now(UTC) + timedelta(days=3650)
    truths = [backtest.load_truth(p) for p in args.truth]
    con = connect_readonly(settings)
    run = backtest.replay(ruleset, backtest.warehouse_minutes(con, since, until))
    scores = backtest.score(ruleset, run, truths) if truths else None
    if args.json:
        print(json.dumps(backtest.as_json(run, scores), indent=2))
    else:
        print(backtest.report(ruleset, run, scores))
    return 0


def _cmd_silence(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.list:
        now = datetime.now(UTC)
        active = actions.active_silences(actions.read_actions(settings), now)
        for s in active:
            print(_silence_line(s))
        if not active:
            print("no active silences")
        return 0
    silence = actions.new_silence(
        by=args.by or "",
        duration=parse_duration(args.duration),
        rule=args.rule,
        dimension=args.dimension,
        value=args.value,
        comment=args.comment,
    )
    actions.record_action(settings, silence)
    print(f"silenced: {_silence_line(silence)}")
    return 0


def _silence_line(s: Silence) -> str:
    what = " ".join(
        f"{k}={v}" for k, v in (("rule", s.rule), ("dimension", s.dimension), ("value", s.value))
        if v is not None
    )  # fmt: skip
    return f"{s.silence_id}  {what}  until {s.ends_at:%Y-%m-%d %H:%M} UTC  by {s.by}  {s.comment}"


def _cmd_unsilence(args: argparse.Namespace) -> int:
    actions.record_action(get_settings(), actions.new_expire(args.silence_id, args.by or ""))
    print(f"silence {args.silence_id} expired")
    return 0


def _cmd_ack(args: argparse.Namespace) -> int:
    ack = actions.new_ack(args.alert_key, args.by or "", args.comment)
    actions.record_action(get_settings(), ack)
    print(f"acknowledged {ack.alert_key} by {ack.by}")
    return 0


def _cmd_log(args: argparse.Namespace) -> int:
    settings = get_settings()
    notes, deliveries = actions.read_log(settings)
    audit = actions.read_actions(settings) if args.audit else []
    rows: list[dict[str, Any]] = [d.model_dump(mode="json") for d in deliveries]
    if args.json:
        print(
            json.dumps(
                {
                    "notifications": [n.model_dump(mode="json") for n in notes],
                    "deliveries": rows,
                    "actions": [a.model_dump(mode="json") for a in audit],
                },
                indent=2,
            )
        )
        return 0
    owed = {n.notification_id for n in notes} - {
        d.notification_id
        for d in deliveries
        if d.outcome in ("delivered", "rejected", "silenced", "acknowledged")
    }
    print(f"{len(notes)} notifications, {len(owed)} not delivered yet")
    for d in deliveries[-args.limit :]:
        code = d.http_status if d.http_status is not None else "-"
        print(
            f"{d.at:%Y-%m-%d %H:%M:%S}  {d.outcome:12s} {d.receiver:14s} {d.status:8s} "
            f"{d.alert_key}  attempt {d.attempt}  {code}  {d.answer[:60]!r}"
        )
    for a in audit:
        if isinstance(a, Silence):
            print(f"{a.at:%Y-%m-%d %H:%M:%S}  silence      {_silence_line(a)}")
        elif isinstance(a, Expire):
            print(f"{a.at:%Y-%m-%d %H:%M:%S}  expire       {a.silence_id} by {a.by}")
        elif isinstance(a, Ack):
            print(f"{a.at:%Y-%m-%d %H:%M:%S}  ack          {a.alert_key} by {a.by} {a.comment}")
    return 0


def register(sub: Any) -> None:
    """Add `alerts` subcommands."""
    p = sub.add_parser("alerts", help="alert rules, notifier, silences, backtest")
    asub = p.add_subparsers(dest="alerts_command", required=True, metavar="ACTION")

    run = asub.add_parser("run", help="the notifier: rules over the live topics, delivery")
    run.add_argument("--rules", type=Path, help="rules file (default: alerts/rules.toml)")
    run.add_argument("--receivers", type=Path, help="receivers file (default: local Alertmanager)")
    run.set_defaults(handler=_cmd_run)

    bt = asub.add_parser("backtest", help="replay the warehouse's minutes through the rules")
    bt.add_argument("rules", type=Path, help="rules file to test")
    bt.add_argument("--since", default="7d", help="age (7d) or ISO time; default 7d")
    bt.add_argument("--until", help="age or ISO time; default now")
    bt.add_argument(
        "--truth", type=Path, action="append", default=[],
        help="a stub run's scenario.json (repeat): score hits, misses, false alarms",
    )  # fmt: skip
    bt.add_argument("--json", action="store_true", help="machine-readable output")
    bt.set_defaults(handler=_cmd_backtest)

    si = asub.add_parser("silence", help="mute matching alerts for a while (audited)")
    si.add_argument("--rule", help="rule name")
    si.add_argument("--dimension", help="dimension, e.g. oca_id")
    si.add_argument("--value", help="dimension value, e.g. oca-17")
    si.add_argument("--duration", default="2h", help="how long (30m, 2h, 1d); default 2h")
    si.add_argument("--by", help="who sets it (required)")
    si.add_argument("--comment", default="", help="why")
    si.add_argument("--list", action="store_true", help="list active silences instead")
    si.set_defaults(handler=_cmd_silence)

    un = asub.add_parser("unsilence", help="end a silence early (audited)")
    un.add_argument("silence_id")
    un.add_argument("--by", help="who ends it (required)")
    un.set_defaults(handler=_cmd_unsilence)

    ack = asub.add_parser("ack", help="acknowledge an alert: no more firing notices (audited)")
    ack.add_argument("alert_key", help='alert key, "rule|dimension=value"')
    ack.add_argument("--by", help="who acknowledges (required)")
    ack.add_argument("--comment", default="", help="note")
    ack.set_defaults(handler=_cmd_ack)

    lg = asub.add_parser("log", help="delivery log: who got what, when, and the answer")
    lg.add_argument("--limit", type=int, default=50, help="last N deliveries (default 50)")
    lg.add_argument("--audit", action="store_true", help="also silences and acknowledgements")
    lg.add_argument("--json", action="store_true", help="machine-readable output")
    lg.set_defaults(handler=_cmd_log)
