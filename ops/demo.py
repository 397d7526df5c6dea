"""`streamwatch demo up|down|status`: every platform service as a background process.

`make demo` brings up the servers (`infra`), creates the topics, then starts these services
in data-flow order; `make down` stops them (reverse order) and then the servers. Each service
is a `streamwatch ...` command with its own pid file and log under the data directory.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.process import ManagedProcess, port_accepts
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings, get_settings

DEMO_RUN = "demo-live"
# Right after `make demo` the stub is still sending its warm-up, at once, to a collector and
# worker that are starting too; on 2 cores that has taken over 30 s.
FAULT_WAIT_S = 180.0
DEMO_AGENT = "demo"
# A demo-only login for the local support console, printed by `make demo`. Real deployments
# put an OIDC proxy in front and set STREAMWATCH_SUPPORT_TRUSTED_HEADER instead.
DEMO_AGENT_PASSWORD = "streamwatch-demo"


@dataclass(frozen=True)
class Service:
    """One long-running platform process."""

    name: str
    command: tuple[str, ...]  # arguments after `streamwatch`
    url: str | None = None
    port: int | None = None

    def process(self, settings: Settings) -> ManagedProcess:
        run_dir = settings.data_dir / "run"
        return ManagedProcess(
            name=self.name,
            pid_file=run_dir / f"{self.name}.pid",
            log_file=settings.logs_dir / f"{self.name}.log",
            # Found again by an environment tag, which survives a service exec-ing into
            # another program (the Streamlit apps do).
            env_marker=f"STREAMWATCH_DEMO_SERVICE={self.name}",
            marker="",
        )


def services(settings: Settings) -> list[Service]:
    """The platform's services in start order (upstream first)."""
    collector_url = f"http://{settings.collector_host}:{settings.collector_port}"
    collector_port = str(settings.collector_port)
    return [
        Service(
            "collector",
            ("collector", "--host", settings.collector_host, "--port", collector_port),
            url=f"{collector_url}/healthz",
            port=settings.collector_port,
        ),
        Service("worker", ("worker", "--workers", "1")),
        Service("service-worker", ("service-worker",)),
        Service("sink-search", ("sink", "search")),
        Service("sink-warehouse", ("sink", "warehouse")),
        Service("notifier", ("alerts", "run")),  # to the local Alertmanager by default
        Service("stub", stub_command(settings, f"{collector_url}/v1/events")),
        Service(
            "support-console",
            ("support", "console", "--port", str(settings.support_console_port)),
            url=f"http://127.0.0.1:{settings.support_console_port}",
            port=settings.support_console_port,
        ),
        Service(
            "dashboards",
            ("dashboards", "--port", str(settings.dashboards_port)),
            url=f"http://127.0.0.1:{settings.dashboards_port}",
            port=settings.dashboards_port,
        ),
        # A real player (hls.js, the SDK and CMCD v2) on a local ffmpeg ladder.
        Service(
            "player-page",
            (
                "players",
                "serve",
                "--port",
                str(settings.player_page_port),
                "--collector-url",
                collector_url,
            ),
            url=f"http://127.0.0.1:{settings.player_page_port}/",
            port=settings.player_page_port,
        ),
    ]


def stub_command(settings: Settings, events_url: str) -> tuple[str, ...]:
    """The live stub's command: paced by `Settings.demo_*` so one worker keeps up.

    Its warm-up (sent at once, so the detector has a history) is kept short: a long one is a
    backlog the worker spends the demo's first minutes on.
    """
    command: tuple[str, ...] = (
        "stub", "run", "--target", "http", "--collector-url", events_url,
        "--members", str(settings.demo_members), "--rate", f"{settings.demo_rate:g}",
        "--speed", f"{settings.demo_speed:g}", "--duration", "86400",
        "--scenario", "normal", "--seed", str(_stub_seed(settings)),
        "--warmup", f"{settings.demo_warmup_s:g}", "--run-name", DEMO_RUN,
    )  # fmt: skip
    if settings.demo_start:
        command += ("--start", settings.demo_start)
    return command


def _stub_seed(settings: Settings) -> int:
    """The pinned seed, else a new one per start: the stub's ids are drawn from its seed, and
    the ids of an earlier demo on the same Kafka data would be dropped as duplicates."""
    if settings.demo_stub_seed is not None:
        return settings.demo_stub_seed
    return secrets.randbelow(2**31)


def _available_commands() -> set[str]:
    from streamwatch.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _chosen(settings: Settings, names: Sequence[str] = ()) -> list[Service]:
    """The services named (all when none), in start order; unknown names are an error."""
    every = services(settings)
    unknown = set(names) - {svc.name for svc in every}
    if unknown:
        known = ", ".join(svc.name for svc in every)
        raise StreamwatchError(f"unknown demo service {', '.join(sorted(unknown))}; one of {known}")
    return [svc for svc in every if not names or svc.name in names]


def up(settings: Settings, names: Sequence[str] = ()) -> list[tuple[Service, str]]:
    """Start every (named) service whose command exists; returns (service, state) pairs."""
    available = _available_commands()
    results: list[tuple[Service, str]] = []
    for svc in _chosen(settings, names):
        proc = svc.process(settings)
        if svc.command[0] not in available:
            results.append((svc, "not built yet"))
            continue
        if proc.pid() is not None:
            results.append((svc, "already running"))
            continue
        proc.start([sys.executable, "-m", "streamwatch.cli", *svc.command])
        results.append((svc, "started"))
    # Wait briefly for the services that listen, so printed URLs answer when shown.
    deadline = time.monotonic() + 60
    for svc, state in results:
        if state == "started" and svc.port is not None:
            while time.monotonic() < deadline and not port_accepts("127.0.0.1", svc.port):
                if svc.process(settings).exited():
                    break
                time.sleep(0.5)
    return results


def _streamwatch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamwatch.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def prepare_support(settings: Settings) -> list[str]:
    """Give the console a demo login and load the live stub's members into its directory."""
    notes: list[str] = []
    added = _streamwatch("support", "add-agent", DEMO_AGENT, stdin=DEMO_AGENT_PASSWORD + "\n")
    if added.returncode == 0:
        notes.append(f"support console login: {DEMO_AGENT} / {DEMO_AGENT_PASSWORD}")
    members = settings.data_dir / "stub" / DEMO_RUN / "members.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not members.is_file():
        time.sleep(1)
    if members.is_file():
        loaded = _streamwatch("support", "load-members", str(members))
        notes.append("member directory loaded" if loaded.returncode == 0 else loaded.stderr.strip())
    return notes


def down(settings: Settings, names: Sequence[str] = ()) -> list[tuple[str, bool]]:
    """Stop every (named) service, downstream first."""
    return [
        (svc.name, svc.process(settings).stop(timeout_s=20))
        for svc in reversed(_chosen(settings, names))
    ]


def _cmd_up(args: argparse.Namespace) -> int:
    settings = get_settings()
    failed = False
    for svc, state in up(settings, args.services):
        proc = svc.process(settings)
        if state == "started" and proc.exited():
            state = f"FAILED (see {proc.log_file})"
            failed = True
        where = f"  {svc.url}" if svc.url and state in ("started", "already running") else ""
        print(f"{svc.name:16s} {state}{where}")
    if "support" in _available_commands() and not args.services:
        for note in prepare_support(settings):
            print(note)
    print(f"\nlogs: {settings.logs_dir}/")
    return 1 if failed else 0


def _cmd_down(args: argparse.Namespace) -> int:
    for name, stopped in down(get_settings(), args.services):
        print(f"{name:16s} {'stopped' if stopped else 'was not running'}")
    return 0


def _cmd_fault(args: argparse.Namespace) -> int:
    from platform_stub.live_faults import request_fault, wait_applied

    settings = get_settings()
    stub = next(svc for svc in services(settings) if svc.name == "stub")
    if stub.process(settings).pid() is None:
        raise StreamwatchError("the demo's stub is not running: start it with `make demo`")
    run_dir = settings.data_dir / "stub" / DEMO_RUN
    try:
        request = request_fault(run_dir, args.scenario, args.minutes)
        applied = wait_applied(
            run_dir,
            request,
            timeout_s=FAULT_WAIT_S,
            on_wait=lambda: print(
                "waiting for the demo's stub to take the fault (it takes faults once its "
                f"warm-up is sent); giving up after {FAULT_WAIT_S:g} s",
                file=sys.stderr,
                flush=True,
            ),
        )
    except (ValueError, TimeoutError) as exc:
        raise StreamwatchError(str(exc)) from exc
    print(
        f"{applied.kind}: {applied.dimension} = {applied.value} moves {applied.metric} "
        f"from {applied.start} to {applied.end} (simulated time)"
    )
    print(
        "the incident shows on the SRE app's Incidents page within a few minutes; the "
        "affected members carry the incident badge in the support console"
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    settings = get_settings()
    for svc in services(settings):
        pid = svc.process(settings).pid()
        print(f"{svc.name:16s} {'running pid ' + str(pid) if pid else 'stopped'}")
    return 0


def register(sub: Any) -> None:
    """Add `demo` subcommands."""
    demo = sub.add_parser("demo", help="run every platform service in the background")
    dsub = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    for action, handler, text in (
        ("up", _cmd_up, "start the services"),
        ("down", _cmd_down, "stop the services"),
    ):
        p = dsub.add_parser(action, help=text)
        p.add_argument("services", nargs="*", help="only these (e.g. worker); default: all")
        p.set_defaults(handler=handler)
    dsub.add_parser("status", help="which services run").set_defaults(handler=_cmd_status)
    fault = dsub.add_parser("fault", help="inject a fault scenario into the running stub")
    fault.add_argument("scenario", help="oca_outage, isp_congestion, drm_license_outage, ...")
    fault.add_argument("--minutes", type=float, default=10.0, help="how long (simulated)")
    fault.set_defaults(handler=_cmd_fault)
