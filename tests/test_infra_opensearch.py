"""Real OpenSearch: bulk index 10,000 documents, then find one by a term query."""

from __future__ import annotations

import uuid

from opensearchpy import OpenSearch, helpers

N_DOCS = 10_000


def test_bulk_index_10k_and_find_one_by_term(opensearch_url: str) -> None:
    client = OpenSearch(hosts=[opensearch_url], timeout=60)
    index = f"infra-bulk-{uuid.uuid4().hex[:8]}"
    client.indices.create(
        index=index,
        body={
            "settings": {"number_of_shards": 1, "number_of_replicas": 0},
            "mappings": {
                "properties": {"member_id": {"type": "keyword"}, "n": {"type": "integer"}}
            },
        },
    )
    try:
        actions = (
            {"_index": index, "_id": str(i), "_source": {"member_id": f"m-{i:05d}", "n": i}}
            for i in range(N_DOCS)
        )
        ok, errors = helpers.bulk(client, actions, chunk_size=2000, raise_on_error=False)
        assert ok == N_DOCS
        assert errors == []
        client.indices.refresh(index=index)

        assert client.count(index=index)["count"] == N_DOCS
        hits = client.search(index=index, body={"query": {"term": {"member_id": "m-04242"}}})[
            "hits"
        ]["hits"]
        assert [h["_source"]["n"] for h in hits] == [4242]
    finally:
        client.indices.delete(index=index)
