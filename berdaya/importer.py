"""Sending an officer's CSV file to the registry in chunks, keeping each row's line number for the error report."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# What the registry accepts per cell and per header; rows beyond these are reported here, not sent.
MAX_CELL = 1000
MAX_COLUMNS = 30


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
    """The file as a whole can't be imported (its encoding, its header, no rows): no row was sent."""


def _open(path: Path) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark Excel writes.
    return open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115


def _not_utf8(line: int) -> ImportRefused:
    return ImportRefused(
        f"line {line} is not UTF-8 text. Save the file as 'CSV UTF-8 (Comma delimited)' in Excel "
        "(or 'Text CSV' with character set UTF-8 in LibreOffice) and import it again"
    )


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and each record with the file line it starts on. Excel in Indonesia often saves ';'."""
    handle = _open(path)
    try:
        header_line = handle.readline()
    except UnicodeDecodeError:
        handle.close()
        raise _not_utf8(1) from None
    if not header_line.strip():
        handle.close()
        raise ImportRefused("the file is empty: its first line should be the header (business_name,owner_name,...)")
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    columns = [c.strip().lower() for c in next(csv.reader([header_line], delimiter=delimiter))]
    if len(columns) > MAX_COLUMNS:
        handle.close()
        raise ImportRefused(f"the header has {len(columns):,} columns; the registry's list has at most {MAX_COLUMNS}")

    def records() -> Iterator[tuple[int, list[str]]]:
        with handle:
            reader = csv.reader(handle, delimiter=delimiter)
            last_line = 1
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError:
                    raise _not_utf8(last_line + 1) from None
                except csv.Error as exc:
                    raise ImportRefused(f"line {last_line + 1} can't be read as CSV ({exc}); fix it and import again") from None
                start, last_line = last_line + 1, reader.line_num + 1
                if not any(v.strip() for v in values):
                    continue  # blank lines are not rows
                yield start, values

    return columns, records()


def count_rows(path: Path) -> int:
    with open(path, "rb") as handle:
        return max(0, sum(1 for _ in handle) - 1)


def _unsendable(line: int, columns: list[str], values: list[str]) -> dict[str, object] | None:
    """Why the registry would refuse the whole chunk for this row, as the row's own error: the other rows go on."""
    if len(values) > MAX_COLUMNS:
        return {"line": line, "field": "row", "code": "import.width",
                "message": f"has {len(values)} values but the header has {len(columns)} columns"}  # fmt: skip
    for name, value in zip(columns, values, strict=False):
        if len(value) > MAX_CELL:
            return {"line": line, "field": name, "code": "import.cell_too_long",
                    "message": f"has {len(value):,} characters; at most {MAX_CELL} are allowed"}  # fmt: skip
        if "\x00" in value:
            return {"line": line, "field": name, "code": "import.nul",
                    "message": "holds a NUL character, which no text has; retype the cell"}  # fmt: skip
    return None


# A chunk the registry could not take (busy, restarting, a timeout) is sent again: each chunk is one transaction and
# rows are recognised by their owner's NIK and business name, so a chunk sent twice registers nothing twice.
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)


def import_file(
    path: Path,
    *,
    base_url: str,
    token: str,
    chunk_size: int = 1000,
    progress: Callable[[int], None] = lambda _: None,
    summary: ImportSummary | None = None,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> ImportSummary:
    """`summary`: filled as chunks are taken, so a caller whose import stops midway still has the rows' errors."""
    columns, records = read_rows(path)
    summary = summary if summary is not None else ImportSummary()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300, transport=transport) as client:
        chunk: list[dict[str, object]] = []

        def post() -> httpx.Response:
            for delay in RETRY_DELAYS:
                try:
                    response = client.post("/imports/businesses", json={"columns": columns, "rows": chunk})
                    if response.status_code not in (429, 500, 502, 503, 504):
                        return response
                except httpx.TransportError:
                    pass
                sleep(delay)
            return client.post("/imports/businesses", json={"columns": columns, "rows": chunk})  # the last word

        def send() -> None:
            response = post()
            if response.status_code in (401, 403, 413, 422):
                problem = response.json()
                raise ImportRefused(problem.get("detail") or problem.get("title") or response.text)
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
            unsendable = _unsendable(line, columns, values)
            if unsendable:
                summary.received += 1
                summary.errors.append(unsendable)
                progress(1)
                continue
            chunk.append({"line": line, "values": values})
            if len(chunk) >= chunk_size:
                send()
        if chunk:
            send()
    if summary.received == 0:
        raise ImportRefused("the file has a header but no rows; nothing was imported")
    summary.errors.sort(key=lambda e: e["line"])  # type: ignore[arg-type, return-value]
    return summary


def write_error_report(errors: list[dict[str, object]], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", "field", "code", "message"])
        writer.writeheader()
        writer.writerows(errors)
