"""Load spans straight into the span indices (no Kafka), as the search sink would write them.

For the support console's tests, alongside `testkit.search_loader` (which does the same for
events, sessions and incidents).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from contract.spans import Span
from contract.tables import TABLE_BY_NAME
from indexers.documents import document_id, flatten
from indexers.search_backend import BulkOp, SearchBackend
from indexers.span_search import spans_alias, spans_index
from streamwatch.settings import Settings

_BULK = 5000


def index_spans(backend: SearchBackend, settings: Settings, spans: Iterable[Span]) -> int:
    """Index `spans` (ids as the sink makes them); returns how many; raises on a reject."""
    table = TABLE_BY_NAME["spans"]
    ops: list[BulkOp] = []
    count = 0
    made: set[str] = set()

    def send() -> None:
        bad = [r for r in backend.bulk(ops) if not (r.ok or r.already_done)]
        if bad:
            raise RuntimeError(f"{len(bad)} spans rejected: {bad[0].error_reason}")
        ops.clear()

    for span in spans:
        doc = flatten(json.loads(span.model_dump_json()), table)
        index = spans_index(settings, span.start_time.date())
        if index not in made:
            backend.create_index(index)  # joins the alias through the template
            made.add(index)
        ops.append(BulkOp("index", index, str(document_id(doc, table)), doc))
        count += 1
        if len(ops) >= _BULK:
            send()
    if ops:
        send()
    backend.refresh(spans_alias(settings))
    return count
