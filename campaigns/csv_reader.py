"""Streaming CSV reading for lead and suppression imports. Pure: no Django, no database.

A `CsvReader` reads a binary file object chunk by chunk and never holds the whole file:

- The encoding is decided from the first chunk: a byte order mark wins (UTF-8 or UTF-16), then
  text that decodes as UTF-8 is UTF-8, otherwise charset-normalizer judges the chunk; anything
  UTF-16 without a byte order mark is read as it judges (only when the chunk has NUL bytes), and
  anything else is read as Windows-1252 (a superset of the printable Latin-1 characters). A chunk
  with NUL bytes that charset-normalizer cannot read as text at all is refused with
  `CsvFormatError`. A short Windows-1252 text that happens to be valid UTF-8 reads as UTF-8.
- The delimiter is sniffed among comma, semicolon, tab and pipe: the candidate that splits the
  sample lines into the same number (more than one) of fields most consistently wins; a file
  with a single column reads with a comma.
- The first non-empty row is the header. Every later row comes back as a `Row` with the line it
  starts on (a quoted field spanning several lines counts from its first line). Malformed rows
  (a field count different from the header's, NUL characters, bytes that do not decode) carry
  a `problem` sentence instead of raising, so an import can report them and go on.
- `bytes_read` tells how many bytes have been read from the file so far, for a progress bar; it
  runs ahead of the rows by at most one chunk and equals the file size at the end.
"""

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import charset_normalizer

CHUNK_SIZE = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_LINES = 50

_UNDECODABLE_HANDLER = "campaigns.csv_reader.undecodable"
_UNDECODABLE_MARK = "\udc00"
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_SINGLE_BYTE_FALLBACK = "cp1252"
_UTF8_NAMES = frozenset({"utf_8", "ascii"})
_UTF16_NAMES = {"utf_16_le": "utf-16-le", "utf_16_be": "utf-16-be"}


def _undecodable(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _UNDECODABLE_MARK, error.end


codecs.register_error(_UNDECODABLE_HANDLER, _undecodable)


class CsvFormatError(ValueError):
    """The file is not CSV text we can read."""


@dataclass(frozen=True)
class Row:
    line: int
    values: tuple[str, ...]
    problem: str | None = None


@dataclass(frozen=True)
class Preview:
    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    encoding: str
    delimiter: str


class _PrefixedCountingRaw(io.RawIOBase):
    """The bytes already read for detection, then the rest of the file, counting what is read."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        super().__init__()
        self._prefix = prefix
        self._rest = rest
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: "memoryview | bytearray") -> int:  # type: ignore[override]
        size = len(buffer)
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
        else:
            data = self._rest.read(size)
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


def encoding_detect(chunk: bytes) -> str:
    """Return the Python codec name for a file that starts with `chunk`."""
    if chunk.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if chunk.startswith(_UTF16_BOMS):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(chunk, final=False)
    except UnicodeDecodeError:
        pass
    else:
        if b"\x00" not in chunk:
            return "utf-8"
    has_nul = b"\x00" in chunk
    best = charset_normalizer.from_bytes(chunk).best()
    if best is None:
        if has_nul:
            raise CsvFormatError("This file does not look like a CSV text file.")
        return _SINGLE_BYTE_FALLBACK
    if best.encoding in _UTF8_NAMES:
        return "utf-8"
    if has_nul and best.encoding in _UTF16_NAMES:
        return _UTF16_NAMES[best.encoding]
    return _SINGLE_BYTE_FALLBACK


def delimiter_sniff(sample: str) -> str:
    """Return the delimiter among `DELIMITERS` that splits `sample` most consistently."""
    lines = re.split(r"\r\n|\r|\n", sample)
    if len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut in the middle
    text = "\n".join(lines[:SAMPLE_LINES])
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not counts:
            continue
        mode = max(set(counts), key=counts.count)
        if mode < 2:
            continue
        score = (counts.count(mode) / len(counts), mode)
        if score > best_score:
            best, best_score = delimiter, score
    return best


class CsvReader:
    """Read a CSV file object as a stream of `Row`s (see the module docstring)."""

    def __init__(self, fileobj: IO[bytes], *, chunk_size: int = CHUNK_SIZE) -> None:
        first = fileobj.read(chunk_size)
        self.encoding = encoding_detect(first)
        sample = codecs.getincrementaldecoder(self.encoding)(errors="replace").decode(first)
        self.delimiter = delimiter_sniff(sample)
        self._raw = _PrefixedCountingRaw(first, fileobj)
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._raw, buffer_size=chunk_size),
            encoding=self.encoding,
            errors=_UNDECODABLE_HANDLER,
            newline="",
        )
        self._reader = csv.reader(self._text, delimiter=self.delimiter)
        self._lines_done = 0
        self.headers: tuple[str, ...] = ()
        self.header_problem: str | None = None
        header = self._next_row()
        if header is not None:
            self.headers = header.values
            self.header_problem = header.problem

    @property
    def bytes_read(self) -> int:
        return self._raw.count

    def _next_row(self) -> Row | None:
        while True:
            line = self._lines_done + 1
            try:
                fields = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as error:
                self._lines_done = self._reader.line_num
                return Row(line, (), f"This row could not be read as CSV ({error}).")
            self._lines_done = self._reader.line_num
            if fields:
                return _row_checked(line, fields)

    def rows(self) -> Iterator[Row]:
        """Yield the data rows after the header, each checked against the header's width."""
        width = len(self.headers)
        while (row := self._next_row()) is not None:
            if row.problem is None and len(row.values) != width:
                row = Row(
                    row.line,
                    row.values,
                    f"This row has {len(row.values)} fields but the header has {width}.",
                )
            yield row


def _row_checked(line: int, fields: list[str]) -> Row:
    problem = None
    if any(_LONE_SURROGATE.search(value) for value in fields):
        problem = "This row contains bytes that are not valid text in the file's encoding."
        fields = [_LONE_SURROGATE.sub("\ufffd", value) for value in fields]
    elif any("\x00" in value for value in fields):
        problem = "This row contains NUL characters."
        fields = [value.replace("\x00", "") for value in fields]
    return Row(line, tuple(fields), problem)


def preview(fileobj: IO[bytes], rows: int = 5) -> Preview:
    """Return the headers, the first `rows` data rows, the encoding and the delimiter."""
    reader = CsvReader(fileobj)
    first: list[Row] = []
    for row in reader.rows():
        if len(first) >= rows:
            break
        first.append(row)
    return Preview(reader.headers, tuple(first), reader.encoding, reader.delimiter)
