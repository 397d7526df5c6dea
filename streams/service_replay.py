"""Control-plane spans through the minute rollups and the service detector, in one process.

The same pure steps a stream worker runs over `telemetry.spans.v1`, without Kafka: for
replaying a stub run and checking the detector against the scenarios' ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from contract.spans import ServiceMinute, Span
from streams import service_detector
from streams.records import Incident
from streams.service_rollup import MINUTE_MS, ServiceRoller
from streams.sessionizer import from_ms, to_ms


@dataclass
class ServiceReplay:
    """Everything published, in publication order."""

    minutes: list[ServiceMinute] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    invalid: int = 0


class ServicePipeline:
    """Spans in; service minutes and incidents out (each closed minute judged once)."""

    def __init__(self, policy: service_detector.ServiceDetectorPolicy | None = None) -> None:
        self.roller = ServiceRoller()
        self.state = service_detector.ServiceDetectorState()
        self.policy = policy or service_detector.DEFAULT_POLICY
        self.out = ServiceReplay()

    def add(self, span: Span) -> None:
        """Count one span."""
        self.roller.add(span)

    def advance(self, watermark_ms: int | None = None) -> None:
        """Publish the minutes now closed and judge each new one."""
        published = self.roller.advance(watermark_ms)
        self.out.minutes.extend(published)
        by_minute: dict[int, list[ServiceMinute]] = {}
        for row in published:
            if row.revision == 0:
                by_minute.setdefault(to_ms(row.minute), []).append(row)
        for start in sorted(by_minute):
            self.out.incidents.extend(
                service_detector.evaluate(self.state, from_ms(start), by_minute[start], self.policy)
            )


def replay_spans(lines: Iterable[str | bytes], advance_every: int = 2_000) -> ServiceReplay:
    """Feed span JSON lines through the rollups and the detector, then flush."""
    pipe = ServicePipeline()
    for n, line in enumerate(lines, 1):
        try:
            span = Span.model_validate_json(line)
        except ValueError:
            pipe.out.invalid += 1
            continue
        pipe.add(span)
        if n % advance_every == 0:
            pipe.advance()
    pipe.advance(pipe.roller.watermark_ms + pipe.roller.policy.grace_ms + 2 * MINUTE_MS)
    return pipe.out
