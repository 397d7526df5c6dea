"""The word-at-a-time murmur2 is aiokafka's (the Java client's) hash, byte for byte."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from streamwatch.key_partition import key_partition, murmur2


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_murmur2_is_aiokafkas(data: bytes) -> None:
    assert murmur2(data) == aiokafka_murmur2(data)


def test_every_tail_length_and_high_bytes() -> None:
    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(20):
            picks = (0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256))
            data = bytes(rng.choice(picks) for _ in range(length))
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_key_partition_is_the_default_partitioners() -> None:
    partitioner = DefaultPartitioner()
    rng = random.Random(11)
    for _ in range(2_000):
        key = f"session-{rng.getrandbits(64):x}|{rng.randrange(10**6)}".encode()
        n = rng.randrange(1, 64)
        assert key_partition(key, n) == partitioner(key, list(range(n)), list(range(n)))
