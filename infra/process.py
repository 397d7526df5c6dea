"""Starting, finding and stopping the server processes that streamwatch owns.

A server is "ours" when its pid file names a live process whose command line carries our
marker (the component's data path). Checking the command line guards against a recycled pid
after a reboot or `kill -9`: a stale pid file is simply ignored and replaced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from streamwatch.errors import PortInUseError


@dataclass(frozen=True)
class ManagedProcess:
    """Where a server's pid file and log live, and how to recognise its process."""

    name: str
    pid_file: Path
    log_file: Path
    marker: str
    env_marker: str | None = None  # NAME=VALUE set in the process environment, if used

    def pid(self) -> int | None:
        """The live pid of this server, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if self.env_marker is not None:
            if _environ_contains(pid, self.env_marker):
                return pid
        elif _cmdline_contains(pid, self.marker):
            return pid
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return None

    def start(self, argv: list[str], env: dict[str, str] | None = None) -> int:
        """Spawn `argv` detached from our session, output appended to the log file."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        if self.env_marker is not None:
            key, _, value = self.env_marker.partition("=")
            env = {**(env if env is not None else os.environ), key: value}
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI that started it
                env=env,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def exited(self) -> bool:
        """True when the process we started is gone (e.g. it failed at start-up)."""
        return self.pid() is None

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, then SIGKILL after `timeout_s`; returns whether something was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        return True

    def log_tail(self, lines: int = 30) -> str:
        """The end of the log, for error messages."""
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _alive(pid: int) -> bool:
    try:
        # A zombie (our own exited child) still answers kill(0); treat it as gone.
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _cmdline_contains(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:  # gone, exiting (zombie) or not ours to read
        return False
    if not _alive(pid):
        return False
    # Right after exec the kernel may not show the new command line yet: a live process
    # whose command line is still empty is the one we just spawned, not a recycled pid.
    return not cmdline or marker.encode() in cmdline


def _environ_contains(pid: int, entry: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:  # gone, exiting (zombie) or not ours to read
        return False
    # As with the command line, a just-exec'd process may briefly show nothing.
    return _alive(pid) and (environ == [b""] or entry.encode() in environ)


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP `port` on this machine, if it can be seen.

    Used for servers that streamwatch reuses but did not start (no pid file of ours).
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEX_IP:HEX_PORT; state 0A is LISTEN.
            if (
                len(fields) > 9
                and fields[3] == "0A"
                and int(fields[1].rsplit(":", 1)[1], 16) == port
            ):
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        try:
            for fd in (proc_dir / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc_dir.name)
        except OSError:
            continue
    return None


def port_is_free(host: str, port: int) -> bool:
    """Whether `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_ports(component: str, host: str, ports: list[int]) -> None:
    """Raise `PortInUseError` naming the first taken port."""
    for port in ports:
        if not port_is_free(host, port):
            raise PortInUseError(
                f"{component} cannot start: port {port} on {host} is already in use by another "
                f"process (free it, or choose another port via STREAMWATCH_* settings)"
            )


def port_accepts(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False
