"""The relay's partitioner sends every key where Kafka's default partitioner (aiokafka's, Java's) sends it."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as kafkas_murmur2

from shared.messaging.partitioner import murmur2, partition_for


def test_the_hash_is_kafkas_murmur2_for_keys_of_every_length_up_to_two_hundred_bytes() -> None:
    rng = random.Random(2026)
    for length in range(201):
        for _ in range(25):
            key = rng.randbytes(length)
            assert murmur2(key) == kafkas_murmur2(key), key


@pytest.mark.parametrize("key", ["3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f", "pledge:42", "21", "", "\x00\xff", "ÿÿÿÿ"])
@pytest.mark.parametrize("partitions", [1, 3, 6, 12, 50])
def test_a_key_goes_to_the_partition_kafkas_default_partitioner_chooses(key: str, partitions: int) -> None:
    every = list(range(partitions))

    assert partition_for(key.encode(), every, every) == DefaultPartitioner()(key.encode(), every, every)


def test_a_key_asked_again_gets_the_same_partition_from_the_cache() -> None:
    every = list(range(6))
    key = b"3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f"

    assert {partition_for(key, every, every) for _ in range(100)} == {partition_for(key, every, [])}


def test_a_record_without_a_key_goes_to_an_available_partition() -> None:
    assert partition_for(None, [0, 1, 2, 3], [2]) == 2
    assert partition_for(None, [0, 1, 2, 3], []) in {0, 1, 2, 3}
