"""The Elasticsearch backend against a real Elasticsearch 8.19 node (Maven Central's zip).

The same documents go to the real OpenSearch too: one query body, sent by either client to
either engine, must give the same answer. The zip has no ILM, so the setup falls back to the
sink's own retention, and `HEAD /` answers 405, so `ping` must not rely on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from indexers import naming, search_queries
from indexers.elasticsearch_backend import ElasticsearchBackend
from indexers.search_backend import BulkOp
from indexers.search_factory import make_backend
from indexers.search_setup import drop_all, ensure_search_ready
from streamwatch.settings import Settings
from testkit.event_json import events

pytestmark = pytest.mark.integration


@pytest.fixture
def es_settings(settings: Settings, elasticsearch_url: str) -> Iterator[Settings]:
    scoped = settings.model_copy(
        update={
            "search_backend": "elasticsearch",
            "search_url": elasticsearch_url,
            "topic_prefix": f"{settings.topic_prefix}es.",
        }
    )
    yield scoped
    for engine in (
        scoped,
        scoped.model_copy(update={"search_backend": "opensearch", "search_url": None}),
    ):
        backend = make_backend(engine)
        try:
            drop_all(backend, engine)
        finally:
            backend.close()


def test_elasticsearch_backend_setup_bulk_and_queries(es_settings: Settings) -> None:
    backend = make_backend(es_settings)
    os_settings = es_settings.model_copy(
        update={"search_backend": "opensearch", "search_url": None}
    )
    os_backend = make_backend(os_settings)
    assert isinstance(backend, ElasticsearchBackend)
    try:
        assert backend.ping()
        version = backend.client.cluster.stats()["nodes"]["versions"]
        assert version and version[0].startswith("8."), version
        report = ensure_search_ready(backend, es_settings)
        # No ILM in this build: the policy API is refused and the sink's retention is used.
        assert report.retention == "fallback: sink deletes daily indices"
        ensure_search_ready(os_backend, os_settings)
        docs = list(events(300, seed=61, members=5))
        ops = []
        for e in docs:
            day = datetime.fromisoformat(e["event_time"]).date()
            flat = {k: v for k, v in e.items() if k not in ("device", "network", "payload")}
            flat.update(e["device"], **e["network"])
            ops.append(BulkOp("create", naming.events_index(es_settings, day), e["event_id"], flat))
        results = backend.bulk(ops)
        assert all(r.status == 201 for r in results)
        assert all(r.status == 201 for r in os_backend.bulk(ops))
        again = backend.bulk(ops[:10])
        assert all(r.already_done for r in again)  # 409: create with our own id
        bad = BulkOp("create", ops[0].index, "bad-1", {**ops[0].document, "asn": "x"})
        [rejected] = backend.bulk([bad])
        assert rejected.rejected and rejected.error_type == "document_parsing_exception", rejected

        alias = naming.events_alias(es_settings)
        backend.refresh(alias)
        os_backend.refresh(alias)
        assert backend.count(alias) == 300
        member = docs[0]["member_id"]
        query = search_queries.member_events(member, datetime.now(UTC) - timedelta(days=30))
        es_hits = backend.search(alias, query)["hits"]["hits"]
        os_hits = os_backend.search(alias, query)["hits"]["hits"]
        # The same query body, sent to either engine, gives the same answer.
        assert [h["_id"] for h in es_hits] == [h["_id"] for h in os_hits]
        assert len(es_hits) == sum(d["member_id"] == member for d in docs)
        assert backend.list_indices(naming.events_index_pattern(es_settings))
    finally:
        backend.close()
        os_backend.close()
