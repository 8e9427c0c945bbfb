import gzip
import json

import pytest

from fac_lightning.files import DataError, read_json, read_rows


def test_a_data_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_bytes(b'{"text": "fine"}\n\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"seed.jsonl:3: not UTF-8 text \(invalid continuation byte 0xe9 at column 14\)"):
        list(read_rows(path))
    gz = tmp_path / "seed.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(DataError, match=r"seed.jsonl.gz:3: not UTF-8 text"):
        list(read_rows(gz))


def test_a_json_file_names_the_line_of_a_decode_error_and_a_row_that_is_not_an_object(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(b'[\n {"text": "a"},\n {"text": "\xff"}\n]')
    with pytest.raises(DataError, match=r"rows.json:3: not UTF-8 text"):
        list(read_rows(path))
    path.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match=r"rows.json: item 1: a row must be a JSON object, found int '1'"):
        list(read_rows(path))
    lines = tmp_path / "rows.jsonl"
    lines.write_text('{"text": "a"}\n["b"]\n')
    with pytest.raises(DataError, match=r"rows.jsonl:2: a row must be a JSON object, found list"):
        list(read_rows(lines))


def test_a_gzip_file_that_is_not_gzip_is_named(tmp_path):
    path = tmp_path / "part.jsonl.gz"
    path.write_text('{"text": "plain text behind a .gz name"}\n')
    with pytest.raises(DataError, match=r"part.jsonl.gz: not a readable gzip file"):
        list(read_rows(path))


def test_a_saved_json_that_is_not_json_names_file_and_line(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{\n  "produces": "classifier",\n  "kind": \n}')
    with pytest.raises(DataError, match=r"model.json:4: not valid JSON \(Expecting value at column 1\)"):
        read_json(path)
    path.write_text(json.dumps({"produces": "classifier"}))
    assert read_json(path) == {"produces": "classifier"}


def test_check_rows_reads_a_file_again_once_it_changed(tmp_path):
    from fac_lightning.files import check_rows

    path = tmp_path / "part.jsonl"
    path.write_text('{"text": "fine"}\n')
    check_rows(path)
    check_rows(path)  # the same version: not read again
    path.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9 au lait"}\n')
    with pytest.raises(DataError, match=r"part.jsonl:2: not UTF-8 text"):
        check_rows(path)
