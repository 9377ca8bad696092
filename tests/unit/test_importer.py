"""Tests the command line's import of a CSV file against a stand-in registry: rows the registry would refuse the
whole chunk for are reported on their own, a registry briefly unable to take a chunk gets it again, and the rows
found wrong before an import stopped are kept."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from berdaya.importer import ImportSummary, import_file

COLUMNS = ["business_name", "owner_name", "address"]


def csv_file(tmp_path: Path, *rows: list[str]) -> Path:
    path = tmp_path / "umkm.csv"
    path.write_text("\n".join(",".join(r) for r in [COLUMNS, *rows]) + "\n", encoding="utf-8")
    return path


class Registry:
    """Answers each chunk with the statuses it is told, in turn, then takes it: every row registered."""

    def __init__(self, *statuses: int, row_errors: dict[int, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.row_errors = row_errors or {}
        self.chunks: list[list[int]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.statuses:
            return httpx.Response(self.statuses.pop(0), text="busy")
        lines = [row["line"] for row in json.loads(request.content)["rows"]]
        self.chunks.append(lines)
        errors = [{"line": n, "field": "owner_nik", "code": "nik.format", "message": why}
                  for n, why in self.row_errors.items() if n in lines]  # fmt: skip
        return httpx.Response(200, json={"received": len(lines), "registered": len(lines) - len(errors), "updated": 0,
                                         "unchanged": 0, "errors": errors})  # fmt: skip


def run(path: Path, registry: Registry, sleeps: list[float], **options: object) -> ImportSummary:
    return import_file(path, base_url="http://registry", token="t", sleep=sleeps.append,
                       transport=httpx.MockTransport(registry), **options)  # type: ignore[arg-type]


def test_a_row_with_a_nul_or_more_cells_than_the_registry_takes_is_reported_by_line_and_the_others_go_in(tmp_path):
    path = csv_file(tmp_path, ["Sei Sapi", "Maria", "Jl. A"], ["Kue\x00", "Ina", "Jl. B"], ["Tenun", "Yuli", *["x"] * 40],
                    ["Kopi", "Nus", "Jl. C"])
    registry, sleeps = Registry(), []

    summary = run(path, registry, sleeps)

    assert registry.chunks == [[2, 5]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [
        (3, "business_name", "import.nul"), (4, "row", "import.width")]  # fmt: skip
    assert (summary.received, summary.registered) == (4, 2)


def test_a_chunk_the_registry_could_not_take_for_a_moment_is_sent_again_after_a_growing_wait(tmp_path):
    path = csv_file(tmp_path, ["Sei Sapi", "Maria", "Jl. A"])
    registry, sleeps = Registry(503, 502), []

    summary = run(path, registry, sleeps)

    assert (registry.chunks, sleeps, summary.registered) == ([[2]], [1.0, 2.0], 1)


def test_an_import_that_stops_keeps_the_rows_found_wrong_before_it_stopped(tmp_path):
    path = csv_file(tmp_path, ["Sei Sapi", "Maria", "Jl. A"], ["Kue", "Ina", "Jl. B"])
    registry, sleeps, summary = Registry(row_errors={2: "16 digits"}), [], ImportSummary()

    def first_chunk_then_down(request: httpx.Request) -> httpx.Response:
        return registry(request) if not registry.chunks else httpx.Response(500, text="boom")

    with pytest.raises(httpx.HTTPStatusError):
        import_file(path, base_url="http://registry", token="t", chunk_size=1, sleep=sleeps.append,
                    transport=httpx.MockTransport(first_chunk_then_down), summary=summary)  # fmt: skip

    assert [(e["line"], e["code"]) for e in summary.errors] == [(2, "nik.format")]
    assert sleeps == [1.0, 2.0, 4.0, 8.0]  # the second chunk was sent five times before giving up
