"""Tests which files count as migrations: every .sql file in a migrations folder must be named as one."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from shared.db import MigrationError, load_migrations


def a_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *files: str) -> str:
    name = f"migrations_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    for file in files:
        (folder / file).write_text("SELECT 1")
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    return name


def test_migrations_are_loaded_in_the_order_of_their_numbers(tmp_path, monkeypatch) -> None:
    package = a_package(tmp_path, monkeypatch, "010_later.sql", "009_first.sql", "README.md")

    assert [(m.version, m.name) for m in load_migrations(package, "demo")] == [(9, "first"), (10, "later")]


@pytest.mark.parametrize("misnamed", ["7_too_few_digits.sql", "008_Add_Index.sql", "009_add-col.sql", "010_x.SQL"])
def test_a_sql_file_not_named_as_a_migration_is_refused_rather_than_skipped(tmp_path, monkeypatch, misnamed) -> None:
    package = a_package(tmp_path, monkeypatch, "001_first.sql", misnamed)

    with pytest.raises(MigrationError, match=f"{misnamed} is not named NNN_what.sql"):
        load_migrations(package, "demo")
