"""`berdaya import` against a real registry with files an officer's spreadsheet (or an attacker) may produce: a cell
too long to read is its row's error and the other rows go in; a byte that is not UTF-8 is named by its own line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from berdaya.importer import read_error_report
from berdaya.stack.process import stop_pid
from services.registry.bulk_import import IMPORT_COLUMNS
from shared.auth import TokenService
from tests.support import TEST_SECRET, registration, service_env, start_service

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BERDAYA_CLI = REPO / ".venv" / "bin" / "berdaya"


@dataclass
class Registry:
    url: str
    token: str


@pytest.fixture
async def registry(infra, database_url, tmp_path, request) -> AsyncIterator[Registry]:  # noqa: ANN001
    env = service_env(infra.kafka, f"import-files-{uuid.uuid4().hex[:8]}")
    env.update(getattr(request, "param", {}))  # settings a test asks for, by indirect parametrisation
    process = await asyncio.to_thread(start_service, "registry", env, database_url, tmp_path / "registry.log")
    try:
        yield Registry(process.url, TokenService(TEST_SECRET).mint("import-files", ["officer"]))
    finally:
        stop_pid(process.pid)


def _cli_import(file: Path, registry: Registry) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BERDAYA_TOKEN": registry.token, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(BERDAYA_CLI), "import", str(file), "--url", registry.url], capture_output=True,
                          text=True, env=env, timeout=120, cwd=REPO)  # fmt: skip


def _line(row: dict[str, object]) -> str:
    return ",".join(str(row.get(c, "")) for c in IMPORT_COLUMNS)


async def _names(registry: Registry) -> list[str]:
    async with httpx.AsyncClient(base_url=registry.url, timeout=30) as http:
        found = await http.get("/businesses", params={"page_size": 100},
                               headers={"Authorization": f"Bearer {registry.token}"})  # fmt: skip
    return sorted(b["business_name"] for b in found.json()["items"])


async def test_a_cell_of_140_000_characters_and_one_past_the_header_are_their_rows_errors_and_the_rest_go_in(
        registry, tmp_path):  # fmt: skip
    rows = [registration() for _ in range(4)]
    lines = [",".join(IMPORT_COLUMNS), _line(rows[0]), _line({**rows[1], "address": "x" * 140_000}), _line(rows[2]),
             _line(rows[3]) + "," + "y" * 1001]  # fmt: skip
    file = tmp_path / "umkm.csv"
    file.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")

    result = await asyncio.to_thread(_cli_import, file, registry)

    output = result.stdout + result.stderr
    assert result.returncode == 2 and "Traceback" not in output, output
    errors = read_error_report(file.with_suffix(".errors.csv"))
    past_the_header = f"column {len(IMPORT_COLUMNS) + 1}"
    assert [(e["line"], e["field"], e["code"]) for e in errors] == [
        ("3", "address", "import.cell_too_long"), ("5", past_the_header, "import.cell_too_long")]  # fmt: skip
    assert "at most 1,000" in errors[0]["message"]
    assert await _names(registry) == sorted([rows[0]["business_name"], rows[2]["business_name"]])


async def test_a_byte_that_is_not_utf8_deep_in_the_file_is_refused_naming_its_line_and_nothing_is_imported(
        registry, tmp_path):  # fmt: skip
    rows = [_line(registration()) for _ in range(300)]
    data = ("\n".join([",".join(IMPORT_COLUMNS), *rows]) + "\n").encode()
    offset = 8192 + 2 * len(rows[0])  # in the second block, a few lines after its start
    bad_line = data.count(b"\n", 0, offset) + 1
    assert data[offset:offset + 1] not in (b"\n", b"")
    file = tmp_path / "umkm.csv"
    file.write_bytes(data[:offset] + b"\xe9" + data[offset + 1:])

    result = await asyncio.to_thread(_cli_import, file, registry)

    output = result.stdout + result.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert result.returncode != 0 and "Traceback" not in output and len(errors) == 1, output
    assert f"line {bad_line} is not UTF-8 text" in " ".join(output.split()), output
    assert await _names(registry) == []


@pytest.mark.parametrize("registry", [{"BERDAYA_MAX_BODY_BYTES": "16384"}], indirect=True)
async def test_rows_with_long_cells_too_many_for_one_request_go_in_as_smaller_ones_and_the_import_ends_clean(
        registry, tmp_path):  # fmt: skip
    # A registry (or a proxy in front of it) taking 16 kB per request, and 80 rows with addresses near the longest
    # taken (300 characters): the default chunk of 1,000 rows is refused whole (413), and goes in halves until each
    # part fits.
    rows = [registration(address=f"Jl. Timor Raya km {i} " + "dekat pasar " * 22) for i in range(80)]
    file = tmp_path / "umkm.csv"
    file.write_text("\n".join([",".join(IMPORT_COLUMNS), *(_line(r) for r in rows)]) + "\n", encoding="utf-8")

    result = await asyncio.to_thread(_cli_import, file, registry)

    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in output, output
    assert "registered" in output and "80" in output, output
    assert await _names(registry) == sorted(r["business_name"] for r in rows)
