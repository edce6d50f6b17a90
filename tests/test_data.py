import pytest

from harness.core.errors import DataError
from harness.tasks.data import load_split, read_jsonl
from tests.conftest import write_jsonl


def test_real_files_have_the_documented_sizes(shared_data):
    assert len(load_split("malt_gsm8k", "test", shared_data)) == 1319
    assert len(load_split("malt_math", "test", shared_data)) == 500
    csqa = load_split("malt_csqa", "test", shared_data)
    assert len(csqa) == 1221 and len(csqa[0]["question"]["choices"]) == 5


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "gsm8k/test.jsonl", [{"question": "q", "answer": "#### 1"}, "{not json"])
    with pytest.raises(DataError, match=r"test.jsonl:2: malformed JSON"):
        read_jsonl("malt_gsm8k", path)


def test_missing_field_and_wrong_benchmark(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"question": "q"}])
    with pytest.raises(DataError, match=r"a.jsonl:1: missing field\(s\) answer"):
        read_jsonl("malt_gsm8k", path)
    path = write_jsonl(tmp_path / "b.jsonl", [{"question": "q", "answer": "#### 1"}])
    with pytest.raises(DataError, match="missing field"):
        read_jsonl("malt_math", path)  # GSM8K rows given as MATH


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DataError, match="data folder not found"):
        load_split("malt_gsm8k", "test", tmp_path / "nope")
    with pytest.raises(DataError, match="malt_gsm8k: test file not found: .*--data-dir DIR .* gsm8k/test.jsonl"):
        load_split("malt_gsm8k", "test", tmp_path)
