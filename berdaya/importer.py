"""Sending an officer's CSV file to the registry in chunks, keeping each row's line number for the error report."""

from __future__ import annotations

import codecs
import csv
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from berdaya.problems import problem_detail
from services.registry.domain.duplicates import name_identity, repeated_row

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
    """The file as a whole can't be imported (its encoding, its header, no rows). Found in the header, no row was
    sent; found further on (a byte that is not UTF-8), the rows before it were."""


# A row the registry takes is at most MAX_COLUMNS cells of MAX_CELL characters; written as CSV, each cell quoted and
# every character a doubled quote, that is about 60,000 characters. A record (one row, over one line or many) longer
# than this is reported as its row's error and read past, never held whole: memory stays bounded whatever the file,
# and csv's field_size_limit (131,072 characters), whose error would stop the whole import, is never reached.
MAX_RECORD = 65_536


def _open(path: Path) -> io.TextIOWrapper:
    # utf-8-sig drops the byte-order mark Excel writes.
    return open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115


def _first_bad_byte(path: Path) -> tuple[int, int, int, int] | None:
    """Where the file stops being UTF-8: (line, character in the line, byte offset in the file, the byte), lines
    counted as the CSV reader counts them (CR, LF or CRLF), or None. Read in blocks: the decoder reports an error
    when it decodes the block holding it, which may be lines after the last row read, so the line is found here."""
    line, column, offset, after_cr, carry = 1, 1, 0, False, b""
    with open(path, "rb") as handle:
        if handle.read(3) != codecs.BOM_UTF8:
            handle.seek(0)
        else:
            offset = 3
        while True:
            block = handle.read(1 << 20)
            data, carry = carry + block, b""
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data":  # a character cut by the block's end
                    text, carry = data[: exc.start].decode("utf-8"), data[exc.start :]
                else:
                    text = data[: exc.start].decode("utf-8")
                    line, column, _ = _advance(text, line, column, after_cr)
                    return line, column, offset + exc.start, data[exc.start]
            line, column, after_cr = _advance(text, line, column, after_cr)
            offset += len(data) - len(carry)
            if not block:
                return None


def _advance(text: str, line: int, column: int, after_cr: bool) -> tuple[int, int, bool]:
    if not text:
        return line, column, after_cr
    ends = _line_ends(text) - (after_cr and text[0] == "\n")
    last = max(text.rfind("\n"), text.rfind("\r"))
    return line + ends, column + len(text) if last < 0 else len(text) - last, text[-1] == "\r"


def _line_ends(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _not_utf8(path: Path) -> ImportRefused:
    save_as = ("Save the file as 'CSV UTF-8 (Comma delimited)' in Excel (or 'Text CSV' with character set UTF-8 in "
               "LibreOffice) and import it again")  # fmt: skip
    with open(path, "rb") as handle:
        if handle.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return ImportRefused(f"the file is UTF-16 text ('Unicode Text'), not UTF-8. {save_as}")
    where = _first_bad_byte(path)
    if where is None:  # the file changed while it was read
        return ImportRefused(f"the file is not UTF-8 text. {save_as}")
    line, column, offset, byte = where
    return ImportRefused(
        f"line {line} is not UTF-8 text: its character {column:,} is the byte 0x{byte:02X} (byte {offset + 1:,} of "
        f"the file). {save_as}"
    )


class _RecordTooLong(Exception):
    """Raised by the lines given to the csv reader when a record grows past MAX_RECORD characters."""


def _lines(handle: io.TextIOWrapper, held: list[str], first: str = "") -> Iterator[str]:
    """The file's lines for the csv reader, those of the record being read kept in `held` (which the reader of
    records empties at each record), until the record would pass MAX_RECORD characters."""
    readline = handle.readline
    size = 0
    line = first
    while True:
        if not held:
            size = 0
        if not line:
            line = readline(MAX_RECORD + 1 - size)  # a line cut here makes the record too long
            if not line:
                return
        held.append(line)
        size += len(line)
        if size > MAX_RECORD:
            raise _RecordTooLong
        yield line
        line = ""


class _Quotes:
    """Whether a CSV record read piece by piece is inside a quoted cell, by CSV's rule: a quote opens a cell only at
    its start, and inside one a doubled quote is a quote; elsewhere (an inch mark: `Ban 5" Motor`) it is a character."""

    def __init__(self, delimiter: str) -> None:
        self._delimiter = delimiter
        self.open = False
        self._at_start = True  # of a cell
        self._just_closed = False

    def read(self, piece: str) -> None:
        if '"' not in piece and not self._just_closed:
            if piece and not self.open:
                self._at_start = piece[-1] in (self._delimiter, "\n", "\r")
            return
        for c in piece:
            if self.open:
                if c == '"':
                    self.open, self._just_closed = False, True
                continue
            if c == '"' and (self._at_start or self._just_closed):
                self.open = True  # a cell's opening quote, or the second of a doubled one
            self._just_closed = False
            self._at_start = c in (self._delimiter, "\n", "\r")


def _skip_record(handle: io.TextIOWrapper, text: str, delimiter: str) -> tuple[int, int, bool, bool, str]:
    """Read past the rest of a record that began with `text` (more than MAX_RECORD characters, its last line maybe
    cut), in bounded pieces: to the end of its line outside any quoted cell, or of the file. Returns the line ends in
    the record, its characters, whether it runs to the end of the file with no line end, whether a quote is then
    still open, and what was read of the next record."""
    quotes = _Quotes(delimiter)
    quotes.read(text)
    ends, size, piece = _line_ends(text), len(text), text
    while True:
        if piece.endswith(("\n", "\r")) and not quotes.open:
            if not piece.endswith("\r"):
                return ends, size, False, False, ""
            following = handle.readline(MAX_RECORD + 1)  # the LF of a CRLF the cut split, or the next line
            if following == "\n":
                return ends, size + 1, False, False, ""
            return ends, size, False, False, following
        following = handle.readline(MAX_RECORD + 1)
        if not following:
            return ends, size, not piece.endswith(("\n", "\r")), quotes.open, ""
        ends += _line_ends(following) - (piece.endswith("\r") and following.startswith("\n"))
        quotes.read(following)
        size += len(following)
        piece = following


def _too_long(line: int, last_line: int, open_quote: bool, columns: list[str], text: str, delimiter: str,
              size: int) -> dict[str, object]:  # fmt: skip
    """The error of a row longer than MAX_RECORD characters, from its first MAX_RECORD (and a bit) characters."""
    values = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [""])
    spans = ""
    if last_line > line:
        spans = (f"; the row runs from line {line} to line {last_line}, the end of the file: a quote (\") that "
                 "opens a cell in it is never closed" if open_quote else
                 f"; the row runs from line {line} to line {last_line}: check that each quote (\") that opens a "
                 "cell closes it")  # fmt: skip
    if len(values) > MAX_COLUMNS:
        return {"line": line, "field": "row", "code": "import.width",
                "message": f"has at least {len(values):,} values but the header has {len(columns)} columns"
                           + spans}  # fmt: skip
    index = next((i for i, v in enumerate(values) if len(v) > MAX_CELL), len(values) - 1)
    return {"line": line, "field": _column_name(columns, index), "code": "import.cell_too_long",
            "message": f"has at least {len(values[index]):,} characters (the row has {size:,}); at most {MAX_CELL:,} "
                       f"are allowed{spans}"}  # fmt: skip


def _column_name(columns: list[str], index: int) -> str:
    return columns[index] if index < len(columns) else f"column {index + 1}"


Record = tuple[int, list[str], dict[str, object] | None]


def read_records(path: Path) -> tuple[list[str], Iterator[Record]]:
    """The header, and each record with the file line it starts on and, for a record too long to read, its row's
    error (and no values). Excel in Indonesia often saves ';'."""
    handle = _open(path)
    try:
        header_line = handle.readline(MAX_RECORD + 1)
    except UnicodeDecodeError:
        handle.close()
        raise _not_utf8(path) from None
    if not header_line.strip():
        handle.close()
        raise ImportRefused("the file is empty: its first line should be the header (business_name,owner_name,...)")
    delimiter = _delimiter(header_line)
    if len(header_line) > MAX_RECORD:
        handle.close()
        at_least = header_line.count(delimiter) + 1
        if at_least > MAX_COLUMNS:
            raise ImportRefused(f"the header has at least {at_least:,} columns; the registry's list has at most "
                                f"{MAX_COLUMNS}")  # fmt: skip
        raise ImportRefused(f"the first line has more than {MAX_RECORD:,} characters; it should be the header "
                            "(business_name,owner_name,...)")  # fmt: skip
    columns = [c.strip().lower() for c in next(csv.reader([header_line], delimiter=delimiter))]
    # Excel writes empty columns after the last named one (a cell once formatted there): nameless and, in each row,
    # empty, they say nothing. A row with a value under one keeps it, and is refused for its width.
    while len(columns) > 1 and not columns[-1]:
        columns.pop()
    if len(columns) > MAX_COLUMNS:
        handle.close()
        raise ImportRefused(f"the header has {len(columns):,} columns; the registry's list has at most {MAX_COLUMNS}")

    def records() -> Iterator[Record]:
        with handle:
            held: list[str] = []  # the lines of the record being read
            reader = csv.reader(_lines(handle, held), delimiter=delimiter)
            last_line = 1
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError:
                    raise _not_utf8(path) from None
                except _RecordTooLong:
                    text = "".join(held)
                    held.clear()
                    try:
                        ends, size, unended, open_quote, following = _skip_record(handle, text, delimiter)
                    except UnicodeDecodeError:
                        raise _not_utf8(path) from None
                    start, last_line = last_line + 1, last_line + ends
                    yield start, [], _too_long(start, last_line + unended, open_quote, columns, text, delimiter, size)
                    reader = csv.reader(_lines(handle, held, following), delimiter=delimiter)
                    continue
                except csv.Error as exc:
                    raise ImportRefused(f"line {last_line + 1} can't be read as CSV ({exc}); fix it and import "
                                        "again") from None  # fmt: skip
                start, last_line = last_line + 1, last_line + len(held)
                held.clear()
                if not any(v.strip() for v in values):
                    continue  # blank lines are not rows
                if len(values) > len(columns) and not any(v.strip() for v in values[len(columns):]):
                    values = values[:len(columns)]
                if last_line > start and len(values) != len(columns):
                    # Sent, it would be refused as line `start` alone, and the lines it took in never named.
                    yield start, [], {
                        "line": start, "field": "row", "code": "import.width",
                        "message": f"has {len(values)} values but the header has {len(columns)} columns, and runs "
                                   f"from line {start} to line {last_line}: a quote (\") that opens a cell in it is "
                                   f"probably never closed, taking lines {start + 1} to {last_line} into that cell; "
                                   "check its quotes and import again"}  # fmt: skip
                    continue
                yield start, values, None

    return columns, records()


def read_rows(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header, and each record with the file line it starts on; a record too long to read refuses the file."""
    columns, records = read_records(path)

    def rows() -> Iterator[tuple[int, list[str]]]:
        for line, values, problem in records:
            if problem:
                raise ImportRefused(f"line {line}, {problem['field']}: {problem['message']}")
            yield line, values

    return columns, rows()


def count_rows(path: Path) -> int:
    """The file's lines less the header, for the progress bar: LF, CRLF and a CR alone (Excel for Mac's "CSV
    (Macintosh)") end a line alike. Read in blocks: a file of one enormous line is never held whole."""
    lines, last = 0, b""
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            split_crlf = last == b"\r" and block[:1] == b"\n"  # a CRLF across two blocks ends one line
            lines += block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n") - split_crlf
            last = block[-1:]
    if last not in (b"", b"\n", b"\r"):
        lines += 1  # the last line, with no line end
    return max(0, lines - 1)


def _unsendable(line: int, columns: list[str], values: list[str]) -> dict[str, object] | None:
    """Why the registry would refuse the whole chunk for this row, as the row's own error: the other rows go on.
    Every value counts, those beyond the header's columns too: the registry bounds them all."""
    if len(values) > MAX_COLUMNS:
        return {"line": line, "field": "row", "code": "import.width",
                "message": f"has {len(values)} values but the header has {len(columns)} columns"}  # fmt: skip
    for index, value in enumerate(values):
        if len(value) > MAX_CELL:
            lines = _line_ends(value) + 1
            return {"line": line, "field": _column_name(columns, index), "code": "import.cell_too_long",
                    "message": f"has {len(value):,} characters; at most {MAX_CELL:,} are allowed"
                               + (f"; it runs over {lines:,} lines: check that the quote (\") opening it closes it"
                                  if lines > 1 else "")}  # fmt: skip
        if "\x00" in value:
            return {"line": line, "field": _column_name(columns, index), "code": "import.nul",
                    "message": "holds a NUL character, which no text has; retype the cell"}  # fmt: skip
    return None


class _Businesses:
    """The businesses named by the rows sent so far, by the owner's NIK and the name's identity: a later row about one
    is refused here, whatever became of the first. The registry refuses a second row about one business within a
    request, but a file goes in chunks, and a chunk refused as too large goes again in halves: only the file knows.
    Were the later row applied after the first, each import of the file would change the business again."""

    def __init__(self, columns: list[str]) -> None:
        self._at = (columns.index("owner_nik"), columns.index("business_name")) if {
            "owner_nik", "business_name"} <= set(columns) else None  # fmt: skip
        self._first: dict[tuple[str, str], int] = {}

    def _key(self, values: list[str]) -> tuple[str, str] | None:
        if self._at is None or max(self._at) >= len(values):
            return None
        nik, name = (values[i] for i in self._at)
        digits = "".join(c for c in nik if c.isdigit())
        return (digits, name_identity(name)) if digits and name.strip() else None

    def earlier_line(self, line: int, values: list[str]) -> int | None:
        """The line of an earlier row about the same business, or None (this row is then the first)."""
        key = self._key(values)
        if key is None:
            return None
        first = self._first.setdefault(key, line)
        return None if first == line else first


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
    """`summary`: filled as chunks are taken, so a caller whose import stops midway still has the rows' errors.

    A chunk refused as too large (413: the registry's body limit, or a proxy's in front of it, such as nginx's 1 MB
    by default) is sent again as two halves, in order, and so on down to one row: rows with long cells go in
    smaller requests, and the import goes on."""
    columns, records = read_records(path)
    summary = summary if summary is not None else ImportSummary()
    businesses = _Businesses(columns)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=300, transport=transport) as client:
        chunk: list[dict[str, object]] = []

        def post(rows: list[dict[str, object]]) -> httpx.Response:
            for delay in RETRY_DELAYS:
                try:
                    response = client.post("/imports/businesses", json={"columns": columns, "rows": rows})
                    if response.status_code not in (429, 500, 502, 503, 504):
                        return response
                except httpx.TransportError:
                    pass
                sleep(delay)
            return client.post("/imports/businesses", json={"columns": columns, "rows": rows})  # the last word

        def send(rows: list[dict[str, object]]) -> None:
            response = post(rows)
            if (response.status_code == 413 or _too_many_rows(response)) and len(rows) > 1:
                # Refused before any row was looked at: none is in, and each half goes on its own.
                half = len(rows) // 2
                send(rows[:half])
                send(rows[half:])
                return
            if response.status_code == 413:
                raise ImportRefused(f"{response.url} refused even line {rows[0]['line']} alone as too large "
                                    f"({problem_detail(response)[:120]}); the registry, or a proxy in front of it, "
                                    "takes smaller requests than one row of this file: ask its operator to raise "
                                    "the limit (nginx: client_max_body_size)")  # fmt: skip
            if response.status_code in (401, 403, 422):
                raise ImportRefused(problem_detail(response))
            response.raise_for_status()
            try:
                report = response.json()
                received = report["received"]
            except (ValueError, KeyError, TypeError):
                # A proxy's or another server's page: the rows may or may not be in, and importing again tells.
                raise ImportRefused(f"{response.url} answered {response.status_code} with something that is not the "
                                    f"registry's import report ({problem_detail(response)[:120]!r}); check that "
                                    "--url is the registry's address") from None  # fmt: skip
            summary.received += received
            summary.registered += report["registered"]
            summary.updated += report["updated"]
            summary.unchanged += report["unchanged"]
            summary.errors.extend(report["errors"])
            progress(len(rows))

        for line, values, unreadable in records:
            unsendable = unreadable or _unsendable(line, columns, values)
            if not unsendable and (first := businesses.earlier_line(line, values)) is not None:
                unsendable = {"line": line, "field": "business_name", "code": "import.repeated_row",
                              "message": repeated_row(first)}  # fmt: skip
            if unsendable:
                summary.received += 1
                summary.errors.append(unsendable)
                progress(1)
                continue
            chunk.append({"line": line, "values": values})
            if len(chunk) >= chunk_size:
                send(chunk)
                chunk = []
        if chunk:
            send(chunk)
    if summary.received == 0:
        raise ImportRefused("the file has a header but no rows; nothing was imported")
    summary.errors.sort(key=lambda e: e["line"])  # type: ignore[arg-type, return-value]
    return summary


def _too_many_rows(response: httpx.Response) -> bool:
    """The registry takes fewer rows a request than this import sends (REGISTRY_IMPORT_MAX_ROWS_PER_REQUEST below
    --chunk): refused before any row was looked at, like a 413."""
    if response.status_code != 422:
        return False
    try:
        errors = response.json().get("errors") or []
        return any(isinstance(e, dict) and e.get("code") == "import.too_many_rows" for e in errors)
    except (ValueError, AttributeError):
        return False


def delimiter_of(path: Path) -> str:
    """The file's delimiter, as `read_records` chose it."""
    try:
        with _open(path) as handle:
            header = handle.readline(MAX_RECORD + 1)
    except (OSError, UnicodeDecodeError):
        return ","
    return _delimiter(header)


def _delimiter(header: str) -> str:
    """Excel in Indonesia often saves ';'."""
    return ";" if header.count(";") > header.count(",") else ","


def read_error_report(path: Path) -> list[dict[str, str]]:
    """The rows to fix as `write_error_report` wrote them, whichever delimiter it used."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = handle.readline()
        handle.seek(0)  # the decoder starts again, and skips the BOM again
        return list(csv.DictReader(handle, delimiter=";" if header.startswith("line;") else ","))


def write_error_report(errors: list[dict[str, object]], path: Path, delimiter: str = ",") -> None:
    """In the import file's delimiter, with a BOM: Excel in Indonesia opens a ';' file with a BOM as columns, and
    without one reads its accents as mojibake."""
    with open(path, "w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.DictWriter(handle, fieldnames=["line", "field", "code", "message"], delimiter=delimiter)
        writer.writeheader()
        writer.writerows(errors)
