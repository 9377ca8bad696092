"""Which partition a key goes to: Kafka's own murmur2 rule, computed a word at a time.

aiokafka's default partitioner computes the same hash byte by byte in Python; for the relay that was a third of
its own CPU time. The result must stay exactly Kafka's (every producer of a topic, Java's included, must send a key
to the same partition, or an aggregate's events lose their order), and tests compare the two on many keys.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from functools import lru_cache

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2) of `data`, as an unsigned 32-bit integer."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
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
    return h ^ (h >> 15)


# An aggregate's events share its key: most keys the relay sees were hashed moments ago.
_cached = lru_cache(maxsize=65_536)(murmur2)


def partition_for(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """aiokafka's `partitioner` callable, with Kafka's default rule: a key's partition is its murmur2 hash (positive)
    modulo the partition count; without a key, any available partition."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[(_cached(key) & 0x7FFFFFFF) % len(all_partitions)]
