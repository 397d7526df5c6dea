"""The Elasticsearch backend's requests, sent to the real OpenSearch where the APIs agree.

No Elasticsearch node that the 9.x client accepts can be fetched from Maven Central (the
newest runnable embedded node there is codelibs' elasticsearch-cluster-runner 7.10.2, which
predates the product header the client requires; ES 8/9 modules are not published). So the
ES backend is exercised against OpenSearch through a tiny HTTP shim that only (1) rewrites
the client's `compatible-with=9` media types to plain JSON and (2) adds the
`X-Elastic-Product` header the client checks. Bodies and answers are the engine's own.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from indexers import naming, search_queries
from indexers.elasticsearch_backend import ElasticsearchBackend
from indexers.opensearch_backend import OpenSearchBackend
from indexers.sample_data import events
from indexers.search_backend import BulkOp, make_backend
from indexers.search_setup import drop_all, ensure_search_ready
from streamwatch.settings import Settings

pytestmark = pytest.mark.integration


def _shim(target: str) -> ThreadingHTTPServer:
    host, port = urlsplit(target).hostname or "127.0.0.1", urlsplit(target).port or 9200

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {}
            for key, value in self.headers.items():
                if key.lower() in ("host", "connection", "content-length"):
                    continue
                if "compatible-with" in value:
                    ndjson = "x-ndjson" in value
                    value = "application/x-ndjson" if ndjson else "application/json"
                headers[key] = value
            conn = http.client.HTTPConnection(host, port, timeout=60)
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(key, value)
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def es_settings(settings: Settings) -> Iterator[Settings]:
    server = _shim(settings.search_endpoint)
    scoped = settings.model_copy(
        update={
            "search_backend": "elasticsearch",
            "search_url": f"http://127.0.0.1:{server.server_address[1]}",
            "topic_prefix": f"{settings.topic_prefix}es.",
        }
    )
    yield scoped
    backend = make_backend(scoped)
    try:
        drop_all(backend, scoped)
    finally:
        backend.close()
        server.shutdown()


def test_elasticsearch_backend_setup_bulk_and_queries(es_settings: Settings) -> None:
    backend = make_backend(es_settings)
    assert isinstance(backend, ElasticsearchBackend)
    try:
        assert backend.ping()
        report = ensure_search_ready(backend, es_settings)
        # No ILM on OpenSearch: the policy API answers "no handler"; the fallback is used.
        assert report.retention == "fallback: sink deletes daily indices"
        docs = list(events(300, seed=61, members=5))
        ops = []
        for e in docs:
            day = datetime.fromisoformat(e["event_time"]).date()
            flat = {k: v for k, v in e.items() if k not in ("device", "network", "payload")}
            flat.update(e["device"], **e["network"])
            ops.append(BulkOp("create", naming.events_index(es_settings, day), e["event_id"], flat))
        results = backend.bulk(ops)
        assert all(r.status == 201 for r in results)
        again = backend.bulk(ops[:10])
        assert all(r.already_done for r in again)  # 409: create with our own id
        bad = BulkOp("create", ops[0].index, "bad-1", {**ops[0].document, "asn": "x"})
        [rejected] = backend.bulk([bad])
        assert rejected.rejected and rejected.error_type == "mapper_parsing_exception"

        alias = naming.events_alias(es_settings)
        backend.refresh(alias)
        assert backend.count(alias) == 300
        member = docs[0]["member_id"]
        query = search_queries.member_events(member, datetime.now(UTC) - timedelta(days=30))
        es_hits = backend.search(alias, query)["hits"]["hits"]
        os_backend = OpenSearchBackend.from_settings(
            es_settings.model_copy(update={"search_url": None, "search_backend": "opensearch"})
        )
        try:
            os_hits = os_backend.search(alias, query)["hits"]["hits"]
        finally:
            os_backend.close()
        # The same query body, sent by either client, gives the same answer.
        assert [h["_id"] for h in es_hits] == [h["_id"] for h in os_hits]
        assert len(es_hits) == sum(d["member_id"] == member for d in docs)
        assert backend.list_indices(naming.events_index_pattern(es_settings))
    finally:
        backend.close()
