"""Which locks a registration or an import takes before checking for duplicates."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import zlib

from services.registry.store import IdentityLock, identity_locks


def _conflict(first: list[IdentityLock], second: list[IdentityLock]) -> bool:
    """PostgreSQL makes one wait for the other: a lock both take, at least one of them alone."""
    held = {(lock.kind, lock.key): lock.shared for lock in first}
    return any((lock.kind, lock.key) in held and not (lock.shared and held[(lock.kind, lock.key)]) for lock in second)


def _phones_on_one_stripe(count: int) -> list[str]:
    """Different phones whose crc32 falls on the same one of the 128 stripes."""
    phones = (f"0813{i:08d}" for i in itertools.count())
    return list(itertools.islice((p for p in phones if zlib.crc32(p.encode()) % 128 == 7), count))


def _chunk(rows: int, offset: int = 0) -> tuple[list[bytes], list[str], list[str]]:
    numbers = range(offset, offset + rows)
    return [f"nik{i}".encode() for i in numbers], [f"0813{i:08d}" for i in numbers], [f"91{i:011d}" for i in numbers]


def test_registrations_sharing_a_nik_a_phone_or_an_nib_wait_for_each_other() -> None:
    first = identity_locks([b"nik-1"], ["081300000001"], ["9120000000001"])

    assert _conflict(first, identity_locks([b"nik-1"], ["081300000002"], []))
    assert _conflict(first, identity_locks([b"nik-2"], ["081300000001"], []))
    assert _conflict(first, identity_locks([b"nik-2"], ["081300000002"], ["9120000000001"]))


def test_registrations_of_different_owners_never_wait_for_each_other_even_on_one_stripe() -> None:
    one, other = _phones_on_one_stripe(2)

    assert not _conflict(identity_locks([], [one], []), identity_locks([], [other], []))


def test_an_import_chunk_waits_for_a_registration_of_a_value_in_it_and_for_another_chunk_over_its_stripes() -> None:
    chunk = identity_locks(*_chunk(1_000))

    assert all(not lock.shared for lock in chunk)
    assert _conflict(chunk, identity_locks([b"nik17"], [], []))
    assert _conflict(chunk, identity_locks([], ["081300000017"], []))
    assert _conflict(chunk, identity_locks([], [], ["91" + "17".zfill(11)]))
    assert _conflict(chunk, identity_locks(*_chunk(1_000, offset=5_000)))


def test_a_nik_never_takes_the_lock_of_a_phone_or_an_nib_with_the_same_bytes() -> None:
    nik, phone = identity_locks([b"0813"], [], []), identity_locks([], ["0813"], [])
    nib = identity_locks([], [], ["0813"])

    assert not _conflict(nik, phone) and not _conflict(nik, nib) and not _conflict(phone, nib)


def test_every_stripe_comes_before_any_value_lock_each_part_sorted_so_none_wait_for_each_other() -> None:
    locks = identity_locks([b"a", b"b", b"a"], ["0813", "0813"], ["9120000000001"])
    stripes, values = [lock for lock in locks if lock.shared], [lock for lock in locks if not lock.shared]

    assert locks == stripes + values
    assert stripes == sorted(set(stripes)) and values == sorted(set(values))
    assert len(values) == 4 and len(stripes) <= 4
    assert all(-(1 << 31) <= n < 1 << 31 for lock in locks for n in (lock.kind, lock.key))  # two int4 keys


def test_up_to_sixteen_values_each_get_a_lock_of_their_own_and_from_seventeen_the_stripes_are_held_alone() -> None:
    sixteen, seventeen = identity_locks([], _chunk(16)[1], []), identity_locks([], _chunk(17)[1], [])

    assert any(lock.shared for lock in sixteen) and sum(not lock.shared for lock in sixteen) == 16
    assert not any(lock.shared for lock in seventeen) and len(seventeen) <= 17


def test_an_import_chunk_of_ten_thousand_rows_takes_at_most_three_hundred_and_eighty_four_locks() -> None:
    locks = identity_locks(*_chunk(10_000))

    assert len(locks) <= 3 * 128
    assert locks == sorted(set(locks))


def test_every_replica_computes_the_same_locks_whatever_its_hash_seed() -> None:
    values = ([b"\x01nik"], ["081234567890"], ["9120000000001"])
    code = (f"from services.registry.store import identity_locks; print(identity_locks(*{values!r}))")
    seen = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout  # fmt: skip
        for seed in ("1", "2", "3")
    }

    assert seen == {f"{identity_locks(*values)}\n"}
