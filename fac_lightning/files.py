"""Reading data files and saved JSON so that every decode error names the file and the line.

A data file (``.jsonl`` / ``.json``, optionally gzipped) is read as rows, each a JSON object; a saved artifact's JSON
(``model.json``, ``manifest.json``, ...) with ``read_json``. Text that is not UTF-8, a line that is not JSON and a row
that is not an object each fail with one ``DataError`` in the form editors and compilers use::

    data/seed.jsonl:3: not UTF-8 text (invalid start byte 0xe9 at column 12)
"""

import gzip
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path


class DataError(ValueError):
    """A data file or row that cannot be used; the message names the file (or source) and the row."""


def json_error(path: Path, line: int, error: json.JSONDecodeError) -> DataError:
    """``<file>:<line>: not valid JSON (<why> at column <c>)``."""
    return DataError(f"{path}:{line}: not valid JSON ({error.msg.removesuffix(' at')} at column {error.colno})")


def decoded(path: Path, data: bytes, line: int = 1) -> str:
    """``data`` (the file's bytes from ``line`` on) as UTF-8 text; bytes that are not fail naming file, line and
    column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        before = data[: e.start]
        column, line = e.start - before.rfind(b"\n"), line + before.count(b"\n")
        raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason} 0x{data[e.start]:02x} at "
                        f"column {column}); save the file as UTF-8") from None


def read_bytes(path: Path) -> bytes:
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (gzip.BadGzipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable gzip file ({e})") from None


def read_json(path: str | Path):
    """A JSON file's value; a file that is not UTF-8 or not JSON is named with its line."""
    path = Path(path)
    text = decoded(path, read_bytes(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise json_error(path, e.lineno, e) from None


def row_object(path: Path, where: str, row) -> dict:
    if not isinstance(row, dict):
        raise DataError(f"{path}:{where}: a row must be a JSON object, found {type(row).__name__} {str(row)[:40]!r}")
    return row


def read_rows(path: Path) -> Iterator[dict]:
    """Rows of a .jsonl / .json (a list of objects) file, optionally gzipped."""
    stem = path.name.removesuffix(".gz")
    if not stem.endswith((".jsonl", ".json")):
        raise DataError(f"{path}: unsupported file type (use .jsonl or .json, optionally .gz)")
    if not path.exists():
        raise FileNotFoundError(f"data file not found: {path}")
    if stem.endswith(".json"):
        rows = read_json(path)
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a JSON list of objects, found a {type(rows).__name__}")
        for i, row in enumerate(rows, start=1):
            yield row_object(path, f" item {i}", row)
        return
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        try:
            for i, raw in enumerate(f, start=1):
                line = decoded(path, raw, i)
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise json_error(path, i, e) from None
                yield row_object(path, str(i), row)
        except (gzip.BadGzipFile, EOFError) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None


@lru_cache(maxsize=1024)
def _all_rows_read(path: Path, mtime_ns: int, size: int) -> None:
    for _ in read_rows(path):
        pass


def check_rows(path: Path) -> None:
    """Read every row of a data file, so a decode error is named now; once per version of the file in a process
    (preflight checks the same mirror files for every run of a sweep)."""
    stat = path.stat()
    _all_rows_read(path, stat.st_mtime_ns, stat.st_size)
