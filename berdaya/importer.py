"""Sending an officer's CSV file to the registry in chunks, keeping each row's line number for the error report."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class ImportSummary:
    received: int = 0
    registered: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    @property
    def rejected_rows(self) -> int:
        return len({e["line"] for e in self.errors})


class ImportRefused(RuntimeError):
    """The registry refused the file as a whole (e.g. its header), so no row was imported."""


def _open(path: Path) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark Excel writes.
    return open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and each record with the file line it starts on. Excel in Indonesia often saves ';'."""
    handle = _open(path)
    header_line = handle.readline()
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    columns = [c.strip().lower() for c in next(csv.reader([header_line], delimiter=delimiter))]

    def records() -> Iterator[tuple[int, list[str]]]:
        with handle:
            reader = csv.reader(handle, delimiter=delimiter)
            last_line = 1
            for values in reader:
                start, last_line = last_line + 1, reader.line_num + 1
                if not any(v.strip() for v in values):
                    continue  # blank lines are not rows
                yield start, values

    return columns, records()


def count_rows(path: Path) -> int:
    with _open(path) as handle:
        return max(0, sum(1 for _ in handle) - 1)


def import_file(
    path: Path,
    *,
    base_url: str,
    token: str,
    chunk_size: int = 1000,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportSummary:
    columns, records = read_rows(path)
    summary = ImportSummary()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300) as client:
        chunk: list[dict[str, object]] = []

        def send() -> None:
            response = client.post("/imports/businesses", json={"columns": columns, "rows": chunk})
            if response.status_code == 422 and "columns" in response.text:
                raise ImportRefused(response.json()["errors"][0]["message"])
            if response.status_code in (401, 403):
                raise ImportRefused(response.json()["error"]["message"])
            response.raise_for_status()
            report = response.json()
            summary.received += report["received"]
            summary.registered += report["registered"]
            summary.updated += report["updated"]
            summary.unchanged += report["unchanged"]
            summary.errors.extend(report["errors"])
            progress(len(chunk))
            chunk.clear()

        for line, values in records:
            chunk.append({"line": line, "values": values})
            if len(chunk) >= chunk_size:
                send()
        if chunk:
            send()
    return summary


def write_error_report(errors: list[dict[str, object]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", "field", "code", "message"])
        writer.writeheader()
        writer.writerows(errors)
