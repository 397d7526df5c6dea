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
from ingest.cmcd import CmcdError, CmcdReport, decode_report
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


@dataclass(frozen=True)
class CmcdLine:
    """One non-blank line of a body: its decoded report, or why it cannot be read."""

    index: int
    original: bytes
    text: str = ""
    report: CmcdReport | None = None
    rejection: Rejection | None = None


@dataclass(frozen=True)
class CmcdBody:
    """A body split into lines and decoded, before any session state is read."""

    lines: list[CmcdLine]

    def sessions(self) -> dict[str, int | None]:
        """Each session the body reports on, with the sequence number of its first report."""
        out: dict[str, int | None] = {}
        for report in (line.report for line in self.lines if line.report is not None):
            sid, sn = report.get("sid"), report.get("sn")
            if isinstance(sid, str) and sid and sid not in out:
                out[sid] = sn if isinstance(sn, int) else None
        return out


def decode_cmcd_body(body: bytes, limits: IngestLimits, max_reports: int) -> CmcdBody | BatchError:
    """Split `body` into lines and decode each (a bad line gets its rejection); a
    `BatchError` for the whole body. Never raises."""
    try:
        return _decode(body, limits, max_reports)
    except Exception as exc:  # the contract is "results, never exceptions"
        return BatchError(UNPROCESSABLE, f"body could not be processed: {type(exc).__name__}")


def translate_cmcd_body(
    body: CmcdBody,
    limits: IngestLimits,
    received_at: datetime,
    translator: CmcdTranslator,
    prepare: Prepare | None = None,
) -> CmcdBatch | BatchError:
    """Every report of a decoded body as events or a rejection, reading and updating the
    sessions' state through `translator`. Never raises."""
    try:
        return _translate(body, limits, received_at, translator, prepare)
    except Exception as exc:
        return BatchError(UNPROCESSABLE, f"body could not be processed: {type(exc).__name__}")


def read_cmcd_body(
    body: bytes,
    limits: IngestLimits,
    max_reports: int,
    received_at: datetime,
    translator: CmcdTranslator,
    prepare: Prepare | None = None,
) -> CmcdBatch | BatchError:
    """Every report of `body` as events or a rejection; a `BatchError` for the whole body."""
    decoded = decode_cmcd_body(body, limits, max_reports)
    if isinstance(decoded, BatchError):
        return decoded
    return translate_cmcd_body(decoded, limits, received_at, translator, prepare)


def _decode(body: bytes, limits: IngestLimits, max_reports: int) -> CmcdBody | BatchError:
    lines = [
        line[:-1] if line.endswith(b"\r") else line
        for line in body.split(b"\n")
        if line.strip(b" \t\r")
    ]
    if not lines:
        return BatchError(EMPTY_BODY, "the body is empty; send one CMCD report per line")
    if len(lines) > max_reports:
        return BatchError(
            TOO_MANY_EVENTS,
            f"body holds {len(lines)} reports; the limit is {max_reports} per request",
        )
    return CmcdBody([_decode_line(index, original, limits) for index, original in enumerate(lines)])


def _decode_line(index: int, original: bytes, limits: IngestLimits) -> CmcdLine:
    if len(original) > limits.max_event_bytes:
        detail = f"report is {len(original)} bytes; the limit is {limits.max_event_bytes}"
        return CmcdLine(
            index, original, rejection=Rejection(index, CMCD_LINE_TOO_LARGE, detail, original)
        )
    try:
        text = original.decode("utf-8")
    except UnicodeDecodeError as exc:
        detail = f"report {index} is not valid UTF-8 at byte {exc.start}: {exc.reason}"
        return CmcdLine(index, original, rejection=Rejection(index, INVALID_UTF8, detail, original))
    try:
        return CmcdLine(index, original, text, decode_report(text))
    except CmcdError as exc:
        return CmcdLine(index, original, text, rejection=_refused(index, original, exc))


def _refused(index: int, original: bytes, exc: CmcdError) -> Rejection:
    return Rejection(index, exc.reason, f"report {index}: {exc.detail}", original)


def _translate(
    body: CmcdBody,
    limits: IngestLimits,
    received_at: datetime,
    translator: CmcdTranslator,
    prepare: Prepare | None,
) -> CmcdBatch:
    batch = CmcdBatch(reports=len(body.lines))
    for line in body.lines:
        index, original = line.index, line.original
        if line.report is None:
            if line.rejection is not None:
                batch.rejected.append(line.rejection)
            continue
        try:
            translation = translator.translate(line.report, line.text)
        except CmcdError as exc:
            batch.rejected.append(_refused(index, original, exc))
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
