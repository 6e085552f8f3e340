"""Reading source files with DuckDB: format detection and the reader expression."""

from __future__ import annotations

import codecs
import os
import shutil
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from audiencesync.errors import UserInputError


class FileFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    JSON = "json"
    NDJSON = "ndjson"


_EXTENSIONS: dict[str, FileFormat] = {
    ".csv": FileFormat.CSV,
    ".tsv": FileFormat.CSV,
    ".txt": FileFormat.CSV,
    ".parquet": FileFormat.PARQUET,
    ".pq": FileFormat.PARQUET,
    ".json": FileFormat.JSON,
    ".ndjson": FileFormat.NDJSON,
    ".jsonl": FileFormat.NDJSON,
}
_COMPRESSION = {".gz", ".zst"}
# Encodings DuckDB's CSV reader decodes itself; others are transcoded to UTF-8 first.
_DUCKDB_ENCODINGS = {"utf-8": "utf-8", "utf-16": "utf-16", "latin-1": "latin-1"}


def parse_format(value: str) -> FileFormat:
    try:
        return FileFormat(value.strip().lower())
    except ValueError:
        names = ", ".join(f.value for f in FileFormat)
        raise UserInputError(
            f"unknown format {value!r}: use one of {names}.", field="format"
        ) from None


def detect_format(path: Path) -> FileFormat:
    """The format named by the file's extension (``.csv.gz`` counts as CSV)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    names = ", ".join(sorted(_EXTENSIONS))
    raise UserInputError(
        f"cannot tell the format of {path.name} from its extension: name it with one of "
        f"{names}, or give its format (csv, parquet, json or ndjson).",
        field="format",
    )


@dataclass(frozen=True)
class ReadOptions:
    """How a source file is read; stored with the dataset so a refresh reads it the same way."""

    format: FileFormat
    delimiter: str | None = None
    encoding: str | None = None


#: The longest CSV delimiter DuckDB's read_csv takes, in UTF-8 bytes ("ab" and "éé" are fine).
MAX_DELIMITER_BYTES = 4


def check_delimiter(delimiter: str | None) -> str | None:
    """``delimiter`` when DuckDB can split a CSV file on it (1 to 4 bytes, no quote or
    line break), else a UserInputError about the delimiter field."""
    if delimiter is None:
        return None
    if (
        not delimiter
        or len(delimiter.encode("utf-8", "surrogatepass")) > MAX_DELIMITER_BYTES
        or any(c in delimiter for c in '"\r\n')
    ):
        raise UserInputError(
            f"a CSV delimiter is 1 to {MAX_DELIMITER_BYTES} bytes without quotes or line "
            "breaks, such as , ; | or a tab: give one, or leave it empty to have it guessed.",
            field="delimiter",
        )
    return delimiter


def normalize_encoding(encoding: str | None) -> str | None:
    """The codec's canonical name, or a UserInputError when Python does not know it."""
    if encoding is None:
        return None
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise UserInputError(
            f"unknown encoding {encoding!r}: use a name such as utf-8, latin-1, cp1252 or utf-16.",
            field="encoding",
        ) from None
    return {"utf-8": "utf-8", "iso8859-1": "latin-1", "utf-16": "utf-16"}.get(name, name)


def transcode_if_needed(path: Path, options: ReadOptions, scratch: Path) -> Path:
    """A path DuckDB can read: ``path`` itself, or a UTF-8 copy in ``scratch``."""
    encoding = options.encoding
    if options.format is not FileFormat.CSV and encoding not in (None, "utf-8"):
        raise UserInputError(
            "an encoding applies to CSV files only; JSON and Parquet are UTF-8.", field="encoding"
        )
    if encoding is None or encoding in _DUCKDB_ENCODINGS:
        return path
    handle, name = tempfile.mkstemp(suffix=".csv", dir=scratch)
    os.close(handle)
    target = Path(name)
    try:
        with (
            path.open("r", encoding=encoding, newline="") as source,
            target.open("w", encoding="utf-8", newline="") as sink,
        ):
            shutil.copyfileobj(source, sink, 1 << 20)
    except UnicodeDecodeError as error:
        target.unlink(missing_ok=True)
        raise UserInputError(
            f"{path.name} is not valid {encoding} (byte {error.start}): "
            "check the file or give its encoding.",
            field="encoding",
        ) from None
    return target


def reader_sql(path: Path, options: ReadOptions) -> tuple[str, list[object]]:
    """A DuckDB table expression that reads ``path``, with its parameters."""
    match options.format:
        case FileFormat.CSV:
            args = ["header = true", "sample_size = 20480"]
            params: list[object] = [str(path)]
            if options.delimiter is not None:
                args.append("delim = ?")
                params.append(options.delimiter)
            if options.encoding in ("utf-16", "latin-1"):
                args.append("encoding = ?")
                params.append(options.encoding)
            return f"read_csv(?, {', '.join(args)})", params
        case FileFormat.PARQUET:
            return "read_parquet(?)", [str(path)]
        case FileFormat.JSON:
            return "read_json(?, format = 'auto')", [str(path)]
        case FileFormat.NDJSON:
            return "read_json(?, format = 'newline_delimited')", [str(path)]
