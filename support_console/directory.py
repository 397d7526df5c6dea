"""The member directory: who a member is, findable by id, profile, device or email.

`streamwatch support load-members PATH` reads the platform stub's population export
(`members.jsonl`, one `platform_stub.population.member_record` per line) and indexes, per
member: member id, profile ids, device ids, the salted email hash and the masked email. The
raw email is read, hashed and masked in memory only; it is never stored, logged or shown.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from indexers.search_backend import BulkOp, SearchBackend, SearchUnavailable
from streamwatch.errors import StreamwatchError
from streamwatch.settings import Settings
from support_console import indices
from support_console.masking import email_hash, mask_email

MEMBER_MAPPINGS: dict[str, Any] = {
    # strict: a field added by mistake (say, a raw email) is rejected, not silently indexed.
    "dynamic": "strict",
    "properties": {
        "member_id": {"type": "keyword"},
        "profiles": {"type": "keyword"},
        "device_ids": {"type": "keyword"},
        "email_hash": {"type": "keyword"},
        "email_masked": {"type": "keyword", "index": False},
        "country": {"type": "keyword"},
        "region": {"type": "keyword"},
        "isp": {"type": "keyword"},
        "plan": {"type": "keyword"},
        "devices": {
            "properties": {
                "device_id": {"type": "keyword"},
                "device_type": {"type": "keyword"},
                "device_model": {"type": "keyword"},
                "os": {"type": "keyword"},
                "app_version": {"type": "keyword"},
            }
        },
        "loaded_at": {"type": "date"},
    },
}

_BATCH = 2000


class DirectoryLoadError(StreamwatchError):
    """The population export could not be read or indexed."""


@dataclass(frozen=True)
class LoadReport:
    """What one load did."""

    read: int
    indexed: int
    skipped: int
    index: str


def directory_document(
    record: Mapping[str, Any], settings: Settings, now: datetime
) -> dict[str, Any]:
    """The directory entry for one exported member (no raw email in it)."""
    email = record.get("email")
    devices = [d for d in record.get("devices") or [] if isinstance(d, Mapping)]
    doc: dict[str, Any] = {
        "member_id": str(record["member_id"]),
        "profiles": [str(p) for p in record.get("profiles") or []],
        "device_ids": [str(d["device_id"]) for d in devices if d.get("device_id")],
        "devices": [
            {
                k: str(d[k])
                for k in ("device_id", "device_type", "device_model", "os", "app_version")
                if d.get(k) is not None
            }
            for d in devices
        ],
        "country": record.get("country"),
        "region": record.get("region"),
        "isp": record.get("isp"),
        "plan": record.get("plan"),
        "loaded_at": now.isoformat(),
    }
    if isinstance(email, str) and email:
        doc["email_hash"] = email_hash(email, settings.support_email_salt)
        doc["email_masked"] = mask_email(email)
    return doc


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Members from `members.jsonl` (or a JSON array), skipping blank lines."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DirectoryLoadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if text.lstrip().startswith("["):
        data = json.loads(text)
        yield from (d for d in data if isinstance(d, dict))
        return
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DirectoryLoadError(f"{path}:{n}: not JSON ({exc})") from exc
        if isinstance(obj, dict):
            yield obj


def find_export(path: Path) -> Path:
    """The members file: `path` itself, or `members.jsonl` inside a stub output directory."""
    if path.is_dir():
        for name in ("members.jsonl", "population/members.jsonl"):
            if (path / name).is_file():
                return path / name
        raise DirectoryLoadError(f"no members.jsonl in {path}")
    return path


def ensure_directory_index(backend: SearchBackend, settings: Settings) -> str:
    """Install the directory's template and create its index (idempotent)."""
    index = indices.members(settings)
    backend.put_index_template(
        index,
        {
            "index_patterns": [index],
            "priority": 200,
            "template": {
                "settings": {"number_of_shards": 1, "number_of_replicas": 0},
                "mappings": MEMBER_MAPPINGS,
            },
            "_meta": {"owner": "streamwatch.support_console", "family": "members"},
        },
    )
    backend.create_index(index)
    return index


def _batches(items: Iterable[BulkOp], size: int) -> Iterator[list[BulkOp]]:
    batch: list[BulkOp] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load_members(
    backend: SearchBackend, settings: Settings, records: Iterable[Mapping[str, Any]]
) -> LoadReport:
    """Index members (upsert by member id, so re-loading an export is idempotent)."""
    index = ensure_directory_index(backend, settings)
    now = datetime.now(UTC)
    read = skipped = indexed = 0

    def ops() -> Iterator[BulkOp]:
        nonlocal read, skipped
        for record in records:
            read += 1
            if not record.get("member_id"):
                skipped += 1
                continue
            doc = directory_document(record, settings, now)
            yield BulkOp("index", index, doc["member_id"], doc)

    for batch in _batches(ops(), _BATCH):
        results = backend.bulk(batch)
        failed = [r for r in results if not r.ok]
        if failed:
            raise SearchUnavailable(
                f"{len(failed)} directory documents rejected: {failed[0].error_reason}"
            )
        indexed += len(results)
    backend.refresh(index)
    return LoadReport(read=read, indexed=indexed, skipped=skipped, index=index)
