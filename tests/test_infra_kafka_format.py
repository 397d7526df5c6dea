"""Formatting Kafka's storage with the real `kafka-storage` tool, whatever the cluster id."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from infra.kafka_server import KafkaServer, new_cluster_id
from streamwatch.settings import Settings


@pytest.fixture
def kafka(tmp_path: Path, stack_settings: Settings) -> KafkaServer:
    """A Kafka whose storage lives in `tmp_path`; the session's stack has fetched its jars."""
    return KafkaServer(Settings(data_dir=tmp_path, cache_dir=stack_settings.cache_dir))


def test_a_cluster_id_starting_with_a_dash_formats_the_storage(kafka: KafkaServer) -> None:
    # One random id in 64 starts with "-"; CI drew one, and the tool read it as an option.
    kafka.home.mkdir(parents=True)
    cluster_id = "-AbCdEfGhIjKlMnOpQrStUw"
    (kafka.home / "cluster.id").write_text(cluster_id)

    kafka._format_storage_once(kafka._write_config())

    meta = (kafka.log_dirs / "meta.properties").read_text().splitlines()
    assert f"cluster.id={cluster_id}" in meta


def test_a_new_cluster_id_is_a_base64url_uuid_never_starting_with_a_dash() -> None:
    ids = [new_cluster_id() for _ in range(5_000)]
    # 5,000 draws without the guard hold a leading "-" with probability 1 - (63/64)^5000.
    assert not [i for i in ids if i.startswith("-")]
    for i in ids:
        assert len(i) == 22
        assert len(base64.urlsafe_b64decode(i + "==")) == 16
    assert len(set(ids)) == len(ids)
