"""What every local server looks like to `infra.stack`: fetch, start, health, stop, status."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

from infra.process import ManagedProcess, listening_pid, require_free_ports
from streamwatch.errors import StartupTimeoutError, StreamwatchError
from streamwatch.settings import Settings


@dataclass(frozen=True)
class ComponentStatus:
    """One server as `streamwatch infra status` reports it."""

    name: str
    running: bool
    healthy: bool
    version: str
    address: str
    pid: int | None
    log: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Component(ABC):
    """A local server started from fetched jars with the machine's Java."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- what each server defines -----------------------------------------------------
    @property
    @abstractmethod
    def process(self) -> ManagedProcess: ...

    @property
    @abstractmethod
    def version(self) -> str: ...

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def ports(self) -> list[int]: ...

    @abstractmethod
    def fetch(self) -> None:
        """Fetch jars (and compile launchers) so that `start` needs no network."""

    @abstractmethod
    def launch(self) -> None:
        """Prepare data directories and spawn the server process."""

    @abstractmethod
    def is_healthy(self) -> bool:
        """A cheap check that the server answers real requests."""

    # -- shared behaviour -------------------------------------------------------------
    def reported_version(self) -> str:
        """The version the running server reports, where it can tell."""
        return self.version

    def status(self) -> ComponentStatus:
        healthy = self.is_healthy()
        pid = self.process.pid()
        if pid is None and healthy:
            # Reused, not started by us (another checkout or by hand): find it by its port.
            pid = listening_pid(self.ports()[0])
        return ComponentStatus(
            name=self.name,
            running=pid is not None or healthy,
            healthy=healthy,
            version=self.reported_version() if healthy else self.version,
            address=self.address,
            pid=pid,
            log=str(self.process.log_file),
        )

    def up(self) -> bool:
        """Start unless already running; wait until healthy. Returns whether it started."""
        if self.process.pid() is not None:
            self.wait_healthy()
            return False
        if self.is_healthy():
            # Started from another checkout or by hand: reuse it rather than fight for its port.
            return False
        require_free_ports(self.name, "127.0.0.1", self.ports())
        self.fetch()
        self.launch()
        self.wait_healthy()
        return True

    def wait_healthy(self) -> None:
        """Poll health until the start timeout; fail fast if the process dies."""
        deadline = time.monotonic() + self.settings.infra_start_timeout_s
        while time.monotonic() < deadline:
            if self.is_healthy():
                return
            if self.process.exited():
                raise StreamwatchError(
                    f"{self.name} exited during start-up; last log lines of "
                    f"{self.process.log_file}:\n{self.process.log_tail()}"
                )
            time.sleep(0.5)
        raise StartupTimeoutError(
            f"{self.name} not healthy after {self.settings.infra_start_timeout_s:.0f}s; "
            f"see {self.process.log_file}"
        )

    def down(self) -> bool:
        """Stop the server if it runs; returns whether something was stopped."""
        return self.process.stop()
