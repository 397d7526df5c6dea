"""The partition Kafka's default partitioner gives a record key (murmur2, as the Java client).

aiokafka's `murmur2` reads the key a byte at a time in Python; the worker hashes the key of
every summary and rollup it publishes, and the stub the key of every event. This one reads
it a 32-bit word at a time: the same hash (`tests/test_key_partition.py` compares them).
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash of `data` (`org.apache.kafka.common.utils.Utils.murmur2`)."""
    length = len(data)
    h = _SEED ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = length & 3
    if tail:
        base = length - tail
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of `partitions` that the default partitioner gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
