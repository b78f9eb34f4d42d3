"""Streaming CSV reading (pure: no database): encodings, delimiters, line numbers, malformed
rows reported in place, and memory that stays flat on a large file."""

import csv
import io
import re
import time
import tracemalloc

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from campaigns.csv_reader import CsvFormatError, CsvReader, Row, preview

# Characters every tested encoding can write; the delimiters themselves are left out so the
# sniffer has one clear answer, quotes and line breaks are in to exercise quoting.
ALPHABET = "abcXYZ019 -_.@\"'\r\néüßÀ€"
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "cp1252")


def csv_bytes(rows, *, encoding="utf-8", delimiter=","):
    text = io.StringIO()
    csv.writer(text, delimiter=delimiter).writerows(rows)
    return text.getvalue().encode(encoding)


def read_all(data):
    reader = CsvReader(io.BytesIO(data))
    return reader, list(reader.rows())


@st.composite
def tables(draw):
    width = draw(st.integers(2, 4))
    field = st.text(alphabet=ALPHABET, max_size=8)
    return draw(st.lists(st.lists(field, min_size=width, max_size=width), min_size=2, max_size=12))


@settings(max_examples=150, deadline=None)
@given(
    table=tables(),
    encoding=st.sampled_from(ENCODINGS),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
)
def test_it_reads_back_what_the_csv_module_wrote(table, encoding, delimiter):
    data = csv_bytes(table, encoding=encoding, delimiter=delimiter)
    if encoding == "cp1252" and not data.isascii():
        # A few Windows-1252 bytes can also be valid UTF-8 ("ß€" is "߀"): no reader can tell.
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            assume(False)
    expected_lines, line = [], 1
    for row in table:
        expected_lines.append(line)
        written = io.StringIO()
        csv.writer(written, delimiter=delimiter).writerow(row)
        line += len(re.findall(r"\r\n|\r|\n", written.getvalue()))

    reader, rows = read_all(data)

    assert reader.headers == tuple(table[0])
    assert [row.values for row in rows] == [tuple(row) for row in table[1:]]
    assert [row.line for row in rows] == expected_lines[1:]
    assert all(row.problem is None for row in rows)
    assert reader.bytes_read == len(data)


@pytest.mark.parametrize(
    ("encoding", "reported"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("utf-16", "utf-16"),
        ("utf-16-le", "utf-16-le"),
        ("cp1252", "cp1252"),
        ("latin-1", "cp1252"),
    ],
)
def test_it_detects_the_encoding(encoding, reported):
    rows = [["email", "name"], ["renee@example.com", "Renée Müller"], ["ola@example.no", "Øla"]]
    reader, read = read_all(csv_bytes(rows, encoding=encoding))

    assert reader.encoding == reported
    assert [row.values for row in read] == [tuple(row) for row in rows[1:]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_it_sniffs_the_delimiter_even_when_fields_contain_commas(delimiter):
    rows = [["email", "company", "note"], ["a@x.io", "Acme, Inc.", "b, c"], ["b@x.io", "Z", ""]]

    reader, read = read_all(csv_bytes(rows, delimiter=delimiter))

    assert reader.delimiter == delimiter
    assert read[0].values == ("a@x.io", "Acme, Inc.", "b, c")


def test_it_reads_a_single_column_file_with_a_comma():
    reader, read = read_all(b"email\na@x.io\nb@x.io\n")

    assert (reader.delimiter, reader.headers) == (",", ("email",))
    assert [row.values for row in read] == [("a@x.io",), ("b@x.io",)]


def test_it_counts_a_multiline_field_from_its_first_line_and_skips_blank_lines():
    data = b'email,note\n\na@x.io,"one\ntwo\nthree"\nb@x.io,ok\n'

    _, read = read_all(data)

    assert [(row.line, row.values) for row in read] == [
        (3, ("a@x.io", "one\ntwo\nthree")),
        (6, ("b@x.io", "ok")),
    ]


def test_it_reports_malformed_rows_with_their_line_and_goes_on():
    data = b"email,name\na@x.io\nb@x.io,B,extra\nc@x.io,C\x00\nd@x.io,\x81\ne@x.io,E\n"

    _, read = read_all(data)

    assert [row.line for row in read] == [2, 3, 4, 5, 6]
    problems = [row.problem for row in read]
    assert problems[0] == "This row has 1 fields but the header has 2."
    assert problems[1] == "This row has 3 fields but the header has 2."
    assert problems[2] == "This row contains NUL characters."
    assert problems[3] == "This row contains bytes that are not valid text in the file's encoding."
    assert problems[4] is None
    assert read[4].values == ("e@x.io", "E")


def test_it_refuses_binary_content():
    with pytest.raises(CsvFormatError):
        CsvReader(io.BytesIO(bytes(range(256)) * 8))


def test_it_reads_an_empty_file_as_no_headers_and_no_rows():
    reader, read = read_all(b"")

    assert (reader.headers, read, reader.bytes_read) == ((), [], 0)


def test_it_previews_headers_first_rows_encoding_and_delimiter():
    rows = [["Email Address", "First name"]] + [[f"p{i}@x.io", f"P{i}"] for i in range(20)]

    result = preview(io.BytesIO(csv_bytes(rows, encoding="utf-8-sig", delimiter=";")), rows=3)

    assert result.headers == ("Email Address", "First name")
    assert result.rows == (
        Row(2, ("p0@x.io", "P0")),
        Row(3, ("p1@x.io", "P1")),
        Row(4, ("p2@x.io", "P2")),
    )
    assert (result.encoding, result.delimiter) == ("utf-8-sig", ";")


def test_it_reports_progress_while_reading():
    rows = [["email", "name"]] + [[f"p{i}@example.com", "x" * 50] for i in range(5_000)]
    data = csv_bytes(rows)
    reader = CsvReader(io.BytesIO(data), chunk_size=4096)
    seen = [reader.bytes_read for _ in reader.rows()]

    assert seen[0] < len(data) / 10
    assert seen == sorted(seen)
    assert reader.bytes_read == len(data)


def test_it_reads_a_large_file_without_holding_it_in_memory(tmp_path):
    path = tmp_path / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "company", "note"])
        for i in range(100_000):
            writer.writerow([f"lead{i}@example.com", f"Name {i}", "Company Ltd", "note " * 20])
    size = path.stat().st_size
    started = time.monotonic()

    tracemalloc.start()
    try:
        with path.open("rb") as handle:
            reader = CsvReader(handle)
            count = problems = last_line = 0
            for row in reader.rows():
                count += 1
                problems += row.problem is not None
                last_line = row.line
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert size > 10 * 1024 * 1024
    assert (count, problems, last_line) == (100_000, 0, 100_001)
    assert peak < min(20 * 1024 * 1024, size // 10)
    assert time.monotonic() - started < 10
