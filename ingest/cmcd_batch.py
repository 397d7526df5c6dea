"""A CMCD v2 event-mode body -> accepted events and rejected lines: pure, never raises.

The body is `application/cmcd`: one report per line (LF or CRLF; blank lines ignored). Each
line is decoded, translated into contract events (`cmcd_events`), enriched and validated on
its own, so one bad line never sinks its body. A rejected line keeps its original bytes for
the dead-letter topic and its 0-based index among the non-blank lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from contract.deadletter import (
    CMCD_LINE_TOO_LARGE,
    EMPTY_BODY,
    INVALID_UTF8,
    TOO_MANY_EVENTS,
    UNPROCESSABLE,
)
from ingest.cmcd import CmcdError, decode_report
from ingest.cmcd_events import CmcdTranslator
from ingest.validation import (
    AcceptedEvent,
    BatchError,
    IngestLimits,
    Prepare,
    Rejection,
    validate_object,
)


@dataclass
class CmcdBatch:
    """What a CMCD body gave: events to write, lines refused, and what was skipped."""

    reports: int = 0
    accepted: list[AcceptedEvent] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0
    ignored: int = 0  # valid reports that make no event (rr, pr, mute...)

    @property
    def reports_accepted(self) -> int:
        """Reports that were read without fault (whether or not they made events)."""
        return self.reports - len({r.index for r in self.rejected})


def _lines(body: bytes) -> list[bytes]:
    return [
        line[:-1] if line.endswith(b"\r") else line
        for line in body.split(b"\n")
        if line.strip(b" \t\r")
    ]


def first_position(body: bytes) -> tuple[str, int] | None:
    """The session id and sequence number of a body's first report, when it has both.

    Read before the body waits its turn, to hold it back until its session's earlier report
    is in; any fault in it is left to `read_cmcd_body`, which reports it.
    """
    lines = _lines(body[: 64 * 1024])
    if not lines:
        return None
    try:
        report = decode_report(lines[0].decode("utf-8"))
    except (UnicodeDecodeError, CmcdError):
        return None
    sid, sn = report.get("sid"), report.get("sn")
    if isinstance(sid, str) and sid and isinstance(sn, int):
        return sid, sn
    return None


def read_cmcd_body(
    body: bytes,
    limits: IngestLimits,
    max_reports: int,
    received_at: datetime,
    translator: CmcdTranslator,
    prepare: Prepare | None = None,
) -> CmcdBatch | BatchError:
    """Every report of `body` as events or a rejection; a `BatchError` for the whole body."""
    try:
        return _read(body, limits, max_reports, received_at, translator, prepare)
    except Exception as exc:  # the contract is "results, never exceptions"
        return BatchError(UNPROCESSABLE, f"body could not be processed: {type(exc).__name__}")


def _read(
    body: bytes,
    limits: IngestLimits,
    max_reports: int,
    received_at: datetime,
    translator: CmcdTranslator,
    prepare: Prepare | None,
) -> CmcdBatch | BatchError:
    lines = _lines(body)
    if not lines:
        return BatchError(EMPTY_BODY, "the body is empty; send one CMCD report per line")
    if len(lines) > max_reports:
        return BatchError(
            TOO_MANY_EVENTS,
            f"body holds {len(lines)} reports; the limit is {max_reports} per request",
        )
    batch = CmcdBatch(reports=len(lines))
    for index, original in enumerate(lines):
        if len(original) > limits.max_event_bytes:
            batch.rejected.append(
                Rejection(
                    index,
                    CMCD_LINE_TOO_LARGE,
                    f"report is {len(original)} bytes; the limit is {limits.max_event_bytes}",
                    original,
                )
            )
            continue
        try:
            text = original.decode("utf-8")
        except UnicodeDecodeError as exc:
            batch.rejected.append(
                Rejection(
                    index,
                    INVALID_UTF8,
                    f"report {index} is not valid UTF-8 at byte {exc.start}: {exc.reason}",
                    original,
                )
            )
            continue
        try:
            translation = translator.translate(decode_report(text), text)
        except CmcdError as exc:
            batch.rejected.append(
                Rejection(index, exc.reason, f"report {index}: {exc.detail}", original)
            )
            continue
        if translation.duplicate:
            batch.duplicates += 1
            continue
        if not translation.events:
            batch.ignored += 1
        for event in translation.events:
            outcome = validate_object(index, original, event, limits, received_at, prepare)
            if isinstance(outcome, Rejection):
                batch.rejected.append(outcome)
            else:
                batch.accepted.append(outcome)
    return batch
