"""`streamwatch support ...`: lookups from a terminal, the console, the member directory.

- `support lookup ID [--since 7d] [--agent NAME] [--case C] [--reason R] [--json] [--trace]`
- `support console [--port P]` runs the Streamlit console
- `support load-members PATH` indexes the stub's `members.jsonl` into the member directory
- `support add-agent NAME` stores a console login (password read from stdin / prompt)
- `support audit [--agent NAME | --member ID]` lists audit records
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from streamwatch.errors import ConfigurationError, StreamwatchError
from streamwatch.settings import get_settings


def _lookup(args: argparse.Namespace) -> int:
    from support_console.identity import agent_from_name
    from support_console.service import LookupRequest, SupportService, parse_period

    settings = get_settings()
    try:
        period = parse_period(args.since, settings)
    except ValueError as exc:
        raise StreamwatchError(str(exc)) from exc
    agent = agent_from_name(args.agent, "cli")
    service = SupportService.open(settings)
    result = service.lookup(
        agent,
        LookupRequest(args.id, period=period, reason=args.reason or "", case_id=args.case or ""),
        surface="cli",
    )
    if result.status == "refused":
        print(
            "streamwatch: support lookup needs --agent NAME (every lookup is audited under an "
            "agent's name); this attempt was recorded as refused.",
            file=sys.stderr,
        )
    elif args.trace and result.status == "found" and agent is not None:
        from support_console.trace_cli import print_with_traces

        print_with_traces(
            service,
            agent,
            result,
            args.id,
            as_json=args.json,
            print_result=_print_result,
            case_id=args.case or "",
        )
    elif args.json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)
    return {"found": 0, "not_found": 4, "empty_index": 4, "invalid": 2, "refused": 5}.get(
        result.status, 1
    )


def _print_result(result: Any) -> None:
    from support_console.models import LookupResult

    assert isinstance(result, LookupResult)
    if result.status != "found" or result.member is None:
        print(result.message, file=sys.stderr)
        return
    m = result.member
    print(f"member {m.member_id}" + (f"  email {m.email_masked}" if m.email_masked else ""))
    print(f"period {result.period_start:%Y-%m-%d %H:%M} .. {result.period_end:%Y-%m-%d %H:%M} UTC")
    print()
    print(result.summary)
    print()
    for s in result.sessions:
        marks = " ".join(
            f"[incident {i.incident_id}: {i.dimension}={i.value}]" for i in s.incidents
        )
        startup = f"{s.startup_ms} ms" if s.startup_ms is not None else "-"
        rebuf = f"{s.rebuffer_pct:.1f}%" if s.rebuffer_pct is not None else "-"
        print(
            f"{s.started_at:%Y-%m-%d %H:%M}  {s.outcome:17s} {s.device_label:32.32s} "
            f"startup {startup:>8s}  rebuffer {rebuf:>6s}  {s.session_id} {marks}"
        )
        for e in s.errors:
            print(f"    {e.at:%H:%M:%S} {e.code} {e.severity}: {e.title}. {e.meaning}")
            print(f"        next step: {e.agent_action}")
    print()
    print("--- case note ---")
    print(result.case_note)


def _console(args: argparse.Namespace) -> int:
    settings = get_settings()
    port = args.port or settings.support_console_port
    app = Path(__file__).with_name("app.py")
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.address",
        args.address,
        # Agents get no "Deploy" button or developer menu.
        "--client.toolbarMode",
        "minimal",
    ]
    # exec: the console becomes this process (pid files and signals of `demo` stay right).
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def _load_members(args: argparse.Namespace) -> int:
    from support_console.directory import find_export, load_members, read_export
    from support_console.service import SupportService

    settings = get_settings()
    service = SupportService.open(settings)
    path = find_export(Path(args.path))
    report = load_members(service.backend, settings, read_export(path))
    print(f"indexed {report.indexed} members from {path} into {report.index}", end="")
    print(f" ({report.skipped} skipped)" if report.skipped else "")
    return 0


def _add_agent(args: argparse.Namespace) -> int:
    from support_console.identity import agents_file, save_agent

    settings = get_settings()
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigurationError("password must be at least 8 characters")
    path = agents_file(settings)
    try:
        save_agent(path, args.name, password)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    print(f"agent {args.name} saved in {path}")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from support_console.service import SupportService

    service = SupportService.open(get_settings())
    field, value = ("member_id", args.member) if args.member else ("agent_id", args.agent)
    if not value:
        raise StreamwatchError("give --agent NAME or --member ID")
    for record in service.audit_log.records(field, value):
        print(json.dumps(record.model_dump(mode="json"), separators=(",", ":")))
    return 0


def register(sub: Any) -> None:
    """Add `support` subcommands."""
    support = sub.add_parser("support", help="member lookup for support agents")
    ssub = support.add_subparsers(dest="support_command", required=True, metavar="ACTION")

    lookup = ssub.add_parser("lookup", help="a member's sessions, errors and known incidents")
    lookup.add_argument("id", help="member id, profile id, session id, device id or email")
    lookup.add_argument("--since", default="7d", help="period: 7d (default), 24h, 2w, 30d")
    lookup.add_argument("--agent", help="your agent name (required: lookups are audited)")
    lookup.add_argument("--case", help="case / ticket id for the audit log")
    lookup.add_argument("--reason", help="why you look (for the audit log)")
    lookup.add_argument("--json", action="store_true", help="print the result as JSON")
    lookup.add_argument(
        "--trace",
        action="store_true",
        help="also show each troubled play's trace: player events and server spans",
    )
    lookup.set_defaults(handler=_lookup)

    console = ssub.add_parser("console", help="run the support console (Streamlit)")
    console.add_argument("--port", type=int, help="default: settings.support_console_port")
    console.add_argument("--address", default="127.0.0.1", help="listen address")
    console.add_argument("--demo-service", help=argparse.SUPPRESS)
    console.set_defaults(handler=_console)

    load = ssub.add_parser("load-members", help="index the stub's members.jsonl")
    load.add_argument("path", help="members.jsonl or a stub output directory holding it")
    load.set_defaults(handler=_load_members)

    add = ssub.add_parser("add-agent", help="store a console login (password from stdin)")
    add.add_argument("name")
    add.set_defaults(handler=_add_agent)

    aud = ssub.add_parser("audit", help="list audit records of an agent or a member")
    aud.add_argument("--agent")
    aud.add_argument("--member")
    aud.set_defaults(handler=_audit)
