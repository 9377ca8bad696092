"""Which locks a registration or an import takes before checking for duplicates."""

from __future__ import annotations

import os
import subprocess
import sys

from services.registry.store import identity_locks


def test_registrations_sharing_a_nik_a_phone_or_an_nib_take_a_common_lock() -> None:
    first = set(identity_locks([b"nik-1"], ["081300000001"], ["9120000000001"]))

    assert first & set(identity_locks([b"nik-1"], ["081300000002"], []))
    assert first & set(identity_locks([b"nik-2"], ["081300000001"], []))
    assert first & set(identity_locks([b"nik-2"], ["081300000002"], ["9120000000001"]))


def test_a_nik_never_takes_the_lock_of_a_phone_or_an_nib_with_the_same_bytes() -> None:
    kinds = [identity_locks([b"0813"], [], [])[0][0], identity_locks([], ["0813"], [])[0][0],
             identity_locks([], [], ["0813"])[0][0]]  # fmt: skip

    assert len(set(kinds)) == 3


def test_the_locks_come_sorted_and_once_each_so_two_transactions_never_wait_for_each_other() -> None:
    locks = identity_locks([b"a", b"b", b"a"], ["0813", "0813"], ["9120000000001"])

    assert locks == sorted(set(locks))


def test_an_import_chunk_of_ten_thousand_rows_takes_at_most_three_hundred_and_eighty_four_locks() -> None:
    rows = range(10_000)
    locks = identity_locks([f"nik{i}".encode() for i in rows], [f"0813{i:08d}" for i in rows], [f"91{i:011d}" for i in rows])

    assert len(locks) <= 3 * 128


def test_every_replica_computes_the_same_locks_whatever_its_hash_seed() -> None:
    values = ([b"\x01nik"], ["081234567890"], ["9120000000001"])
    code = (f"from services.registry.store import identity_locks; print(identity_locks(*{values!r}))")
    seen = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout  # fmt: skip
        for seed in ("1", "2", "3")
    }

    assert seen == {f"{identity_locks(*values)}\n"}
