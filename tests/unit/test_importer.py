"""Tests the command line's import of a CSV file against a stand-in registry: rows the registry would refuse the
whole chunk for are reported on their own, a registry briefly unable to take a chunk gets it again, and the rows
found wrong before an import stopped are kept."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import httpx
import pytest

from berdaya.importer import ImportRefused, ImportSummary, import_file

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


class Proxied(Registry):
    """A registry behind a proxy that refuses request bodies over `limit` bytes, as nginx does (1 MB by default)."""

    def __init__(self, limit: int, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.limit = limit
        self.refused = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if len(request.content) > self.limit:
            self.refused += 1
            return httpx.Response(413, text="<html><h1>413 Request Entity Too Large</h1></html>")
        return super().__call__(request)


def test_a_chunk_too_large_for_a_proxy_goes_in_as_smaller_requests_in_the_files_order(tmp_path):
    path = csv_file(tmp_path, *[[f"Usaha {i}", "Maria", "Jl. " + "x" * 900] for i in range(10)])
    registry, taken = Proxied(limit=3_000, row_errors={5: "16 digits"}), []

    summary = run(path, registry, [], chunk_size=10, progress=taken.append)

    assert registry.refused > 0
    assert [line for chunk in registry.chunks for line in chunk] == list(range(2, 12))  # each row once, in order
    assert (summary.received, summary.registered, sum(taken)) == (10, 9, 10)
    assert [(e["line"], e["code"]) for e in summary.errors] == [(5, "nik.format")]


def test_a_row_too_large_alone_stops_the_import_naming_its_line_and_whom_to_ask_and_the_rows_before_stay_in(tmp_path):
    path = csv_file(tmp_path, ["Sei Sapi", "Maria", "Jl. A"], ["Kue", "Ina", "Jl. B"], ["Tenun", "Yuli", "x" * 900])
    registry, summary = Proxied(limit=700), ImportSummary()

    with pytest.raises(ImportRefused) as refused:
        import_file(path, base_url="http://registry", token="t", sleep=lambda _: None,
                    transport=httpx.MockTransport(registry), summary=summary)  # fmt: skip

    assert "line 4 alone" in str(refused.value) and "client_max_body_size" in str(refused.value)
    assert (registry.chunks, summary.registered) == ([[2], [3]], 2)


@pytest.mark.parametrize(("status", "page"), [(413, "<html><h1>413 Request Entity Too Large</h1></html>"),
                                             (200, "<html>Selamat datang di nginx</html>")])  # fmt: skip
def test_an_answer_that_is_not_the_registrys_is_refused_with_its_words_not_a_traceback(tmp_path, status, page):
    path = csv_file(tmp_path, ["Sei Sapi", "Maria", "Jl. A"])

    def proxy(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=page)

    with pytest.raises(ImportRefused) as refused:
        import_file(path, base_url="http://registry", token="t", sleep=lambda _: None,
                    transport=httpx.MockTransport(proxy))  # fmt: skip

    assert page[:40] in str(refused.value)
    assert status != 200 or "--url" in str(refused.value)


# ---------------------------------------------------------------------------------------------------------------
# Hostile files: the line named is the line to fix, a row too long to read is its own error, memory stays bounded
# ---------------------------------------------------------------------------------------------------------------

def numbered_rows(count: int) -> list[str]:
    return [f"Usaha {n},Pemilik {n},Jl. Timor Raya {n}" for n in range(2, count + 2)]


def write(tmp_path: Path, lines: list[str], newline: str = "\n", *, end: str | None = None) -> Path:
    path = tmp_path / "umkm.csv"
    path.write_bytes((newline.join([",".join(COLUMNS), *lines]) + (newline if end is None else end)).encode())
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ImportRefused) as refused:
        run(path, Registry(), [])
    return str(refused.value)


def with_bad_byte(path: Path, offset: int) -> tuple[int, int]:
    """Puts the Windows-1252 'é' (0xE9) at `offset` in place of the byte there; its line and character there."""
    data = path.read_bytes()
    assert data[offset:offset + 1] not in (b"\n", b"\r", b"")
    path.write_bytes(data[:offset] + b"\xe9" + data[offset + 1:])
    line_start = max(data.rfind(b"\n", 0, offset), data.rfind(b"\r", 0, offset)) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("side", [-2, 1], ids=["in the first block", "in the second block"])
def test_a_byte_that_is_not_utf8_on_a_line_across_two_8_kb_blocks_is_named_by_its_own_line(tmp_path, newline, side):
    path = write(tmp_path, numbered_rows(3000), newline)
    data = path.read_bytes()
    # A line that starts a few bytes before the end of a block, deep in the file, and ends in the next block.
    boundary = next(b for b in range(5 * 8192, len(data), 8192)
                    if data.rfind(b"\n", 0, b) < b - 4 and data.find(newline.encode(), b - 2) > b + 2)  # fmt: skip
    line, character = with_bad_byte(path, boundary + side)

    assert f"line {line} is not UTF-8 text: its character {character} is the byte 0xE9" in refusal(path)


def test_a_byte_that_is_not_utf8_near_the_start_is_named_by_its_line_not_the_header(tmp_path):
    path = write(tmp_path, numbered_rows(50))
    line, character = with_bad_byte(path, len(",".join(COLUMNS)) + 1 + len("Usaha 2,Pemilik 2,") + 3)

    assert (line, character) == (2, 22)
    assert "line 2 is not UTF-8 text: its character 22 is the byte 0xE9" in refusal(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_byte_that_is_not_utf8_at_the_very_end_of_the_file_is_named_by_the_last_line(tmp_path, newline):
    path = write(tmp_path, numbered_rows(1000), newline, end="")
    with_bad_byte(path, len(path.read_bytes()) - 1)
    path.write_bytes(path.read_bytes() + b"\xc3")  # and a character cut short by the end of the file

    last = len(numbered_rows(1000)[-1])
    assert f"line 1001 is not UTF-8 text: its character {last} is the byte 0xE9" in refusal(path)


def test_a_file_saved_as_utf16_is_refused_naming_that_encoding(tmp_path):
    path = tmp_path / "umkm.csv"
    path.write_bytes(("\n".join([",".join(COLUMNS), "Sei Sapi,Maria,Jl. A"]) + "\n").encode("utf-16"))

    assert "the file is UTF-16 text" in refusal(path)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_a_cell_of_140_000_characters_is_its_rows_error_naming_line_field_and_limit_and_the_other_rows_go_in(
        tmp_path, newline):  # fmt: skip
    path = write(tmp_path, ["Sei Sapi,Maria,Jl. A", "Kue,Ina," + "x" * 140_000, "Kopi,Nus,Jl. C",
                            'Tenun,"' + "y" * 140_000 + '",Jl. D', "Jagung,Yuli,Jl. E"], newline)  # fmt: skip
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[2, 4, 6]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [
        (3, "address", "import.cell_too_long"), (5, "owner_name", "import.cell_too_long")]  # fmt: skip
    assert "at most 1,000 are allowed" in summary.errors[0]["message"]
    assert (summary.received, summary.registered) == (5, 3)


def test_a_quoted_cell_over_many_lines_too_long_to_read_is_one_rows_error_and_the_lines_after_it_keep_their_numbers(
        tmp_path):  # fmt: skip
    cell = "\n".join(f"baris {n}" for n in range(20_000))
    path = write(tmp_path, ["Sei Sapi,Maria,Jl. A", f'Kue,Ina,"{cell}"', "Kopi,Nus,Jl. C"], "\r\n")
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[2, 20_003]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(3, "address", "import.cell_too_long")]
    assert "runs from line 3 to line 20002" in summary.errors[0]["message"]


@pytest.mark.parametrize("rows", [1_000, 20_000])
def test_a_file_ending_inside_a_quote_is_one_rows_error_naming_the_quote_and_the_rows_before_it_go_in(tmp_path, rows):
    path = write(tmp_path, ["Sei Sapi,Maria,Jl. A", 'Kue,Ina,"Jl. B', *numbered_rows(rows)])
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[2]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(3, "address", "import.cell_too_long")]
    assert "quote" in summary.errors[0]["message"]


def test_a_line_of_millions_of_characters_with_no_line_end_is_read_in_bounded_memory_as_its_rows_error(tmp_path):
    path = write(tmp_path, ["Sei Sapi,Maria,Jl. A", "Kue,Ina," + "x" * 30_000_000], end="")
    registry = Registry()

    tracemalloc.start()
    try:
        summary = run(path, registry, [])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert registry.chunks == [[2]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(3, "address", "import.cell_too_long")]
    assert peak < 5_000_000, f"{peak:,} bytes held for a 30,000,000-character line"


def test_a_line_of_millions_of_delimiters_is_its_rows_error(tmp_path):
    path = write(tmp_path, ["," * 3_000_000, "Sei Sapi,Maria,Jl. A"])
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[3]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(2, "row", "import.width")]


def test_a_cell_over_the_limit_beyond_the_headers_columns_is_its_rows_error_not_the_chunks(tmp_path):
    path = write(tmp_path, ["Sei Sapi,Maria,Jl. A", "Kue,Ina,Jl. B," + "x" * 1001, "Kopi,Nus,Jl. C"])
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[2, 4]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(3, "column 4", "import.cell_too_long")]


@pytest.mark.parametrize(
    ("header", "reason"),
    [(",".join(f"kolom_{n}" for n in range(100_000)), "columns; the registry's list has at most 30"),
     ("x" * 140_000, "the first line has more than 65,536 characters"),
     ("y" * 30_000_000, "the first line has more than 65,536 characters")],  # fmt: skip
    ids=["100,000 columns", "a cell of 140,000 characters", "30,000,000 characters and no line end"],
)
def test_a_header_too_long_to_be_the_registrys_is_refused_at_once_in_bounded_memory(tmp_path, header, reason):
    path = tmp_path / "umkm.csv"
    path.write_text(header + "\nSei Sapi,Maria,Jl. A\n", encoding="utf-8")

    tracemalloc.start()
    try:
        message = refusal(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert reason in message
    assert peak < 5_000_000, f"{peak:,} bytes held for a header of {len(header):,} characters"


def test_a_bom_crlf_file_with_a_nul_and_a_quoted_cell_over_lines_keeps_every_rows_line(tmp_path):
    path = tmp_path / "umkm.csv"
    lines = [",".join(COLUMNS), "Sei Sapi,Maria,Jl. A", "Kue\x00,Ina,Jl. B", 'Kopi,Nus,"Jl. C\r\nRT 3\r\nRW 1"', "",
             "Tenun,Yuli,Jl. D"]  # fmt: skip
    path.write_bytes("\ufeff".encode() + "\r\n".join(lines).encode())
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[2, 4, 8]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(3, "business_name", "import.nul")]


def test_a_business_an_earlier_row_of_the_file_named_is_reported_repeated_and_never_sent_whatever_the_chunks(
    tmp_path,
):
    path = tmp_path / "umkm.csv"
    path.write_text("owner_nik,business_name,address\n"
                    "5371014501900001,Warung Sei Sapi Maria,Jl. A\n"
                    "5371014501900002,Kopi Nus,Jl. B\n"
                    "5371014501900003,Tenun Yuli,Jl. C\n"
                    "5371 0145 0190 0001,sei sapi maria,Jl. Baru\n"
                    "5371014501900002,Kopi Nus,Jl. D\n", encoding="utf-8")  # fmt: skip
    registry = Registry(row_errors={3: "refused: the row is still the file's one about Kopi Nus"})

    summary = run(path, registry, [], chunk_size=2)

    assert registry.chunks == [[2, 3], [4]]
    assert [(e["line"], e["code"]) for e in summary.errors] == [
        (3, "nik.format"), (5, "import.repeated_row"), (6, "import.repeated_row")]  # fmt: skip
    assert "line 2" in summary.errors[1]["message"] and "remove the other" in summary.errors[1]["message"]
    assert "line 3" in summary.errors[2]["message"]
    assert summary.received == 5


def test_a_repeated_row_in_a_chunk_split_in_halves_by_a_proxy_is_still_reported_not_sent(tmp_path):
    path = tmp_path / "umkm.csv"
    path.write_text("owner_nik,business_name,address\n"
                    "5371014501900001,Warung Ani,Jl. A\n"
                    "5371014501900002,Kopi Nus,Jl. B\n"
                    "5371014501900001,warung ani,Jl. Baru\n", encoding="utf-8")  # fmt: skip
    registry = Registry(413)

    summary = run(path, registry, [], chunk_size=3)

    assert registry.chunks == [[2], [3]]
    assert [(e["line"], e["code"]) for e in summary.errors] == [(4, "import.repeated_row")]


def test_a_quote_never_closed_that_takes_the_next_lines_into_its_cell_names_every_line_it_took(tmp_path):
    path = write(tmp_path, ['Kue,Ina,"Jl. Frans Seda 12, Fatululi', "Kopi,Nus,Jl. C", 'Tenun,Yuli,"Gg. 4, RT 02"',
                            "Sapi,Ani,Jl. E"])  # fmt: skip
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [[5]]
    assert [(e["line"], e["field"], e["code"]) for e in summary.errors] == [(2, "row", "import.width")]
    assert "line 2 to line 4" in summary.errors[0]["message"] and "quote" in summary.errors[0]["message"]


def test_an_inch_mark_in_a_row_too_long_to_read_is_a_character_not_a_quote_left_open_over_the_rest_of_the_file(
        tmp_path):  # fmt: skip
    long_row = 'Ban 5" Motor,Ina,' + "x" * 70_000
    path = write(tmp_path, [long_row, *numbered_rows(47)])
    registry = Registry()

    summary = run(path, registry, [])

    assert registry.chunks == [list(range(3, 50))]
    assert [(e["line"], e["code"]) for e in summary.errors] == [(2, "import.cell_too_long")]
    assert "quote" not in summary.errors[0]["message"]


def test_the_empty_columns_excel_writes_after_the_last_named_one_are_left_out_and_a_value_under_one_is_its_rows_error(
        tmp_path):  # fmt: skip
    path = tmp_path / "umkm.csv"
    path.write_text(",".join(COLUMNS) + ",,,\nSei Sapi,Maria,Jl. A,,,\nKue,Ina,Jl. B,,x,\nKopi,Nus,Jl. C\n",
                    encoding="utf-8")  # fmt: skip
    sent: list[dict] = []

    def registry(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        wide = [{"line": r["line"], "field": "row", "code": "import.width", "message": "too wide"}
                for r in body["rows"] if len(r["values"]) != len(body["columns"])]  # fmt: skip
        return httpx.Response(200, json={"received": len(body["rows"]), "registered": len(body["rows"]) - len(wide),
                                         "updated": 0, "unchanged": 0, "errors": wide})  # fmt: skip

    summary = import_file(path, base_url="http://registry", token="t", transport=httpx.MockTransport(registry))

    assert [body["columns"] for body in sent] == [COLUMNS]
    assert [(r["line"], len(r["values"])) for r in sent[0]["rows"]] == [(2, 3), (3, 6), (4, 3)]
    assert [(e["line"], e["code"]) for e in summary.errors] == [(3, "import.width")]


def test_a_registry_that_takes_fewer_rows_a_request_than_a_chunk_gets_them_in_smaller_requests_in_order(tmp_path):
    path = write(tmp_path, numbered_rows(5))
    taken: list[list[int]] = []

    def registry(request: httpx.Request) -> httpx.Response:
        lines = [r["line"] for r in json.loads(request.content)["rows"]]
        if len(lines) > 2:
            return httpx.Response(422, json={"code": "invalid_input", "detail": "rows: send at most 2 rows per request",
                                             "errors": [{"field": "rows", "code": "import.too_many_rows",
                                                         "message": "send at most 2 rows per request"}]})  # fmt: skip
        taken.append(lines)
        return httpx.Response(200, json={"received": len(lines), "registered": len(lines), "updated": 0,
                                         "unchanged": 0, "errors": []})  # fmt: skip

    summary = import_file(path, base_url="http://registry", token="t", chunk_size=5,
                          transport=httpx.MockTransport(registry))  # fmt: skip

    assert taken == [[2, 3], [4], [5, 6]] and summary.registered == 5
