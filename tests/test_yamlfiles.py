"""Our own YAML files (prompts files, accelerate configs) are read by one reader: one-line errors naming the file."""

import pytest

from harness.core.errors import MaltError
from harness.core.yamlfiles import read_yaml_mapping
from harness.lmeval.solver import generic_prompts
from harness.tasks.prompts import load_prompts
from malt_train.launch import read_config

MALFORMED = "generator:\n  user: 'a'\n verifier: [unclosed\n"


def _error(call, *args) -> str:
    with pytest.raises(MaltError) as err:
        call(*args)
    return str(err.value)


def test_a_malformed_file_is_one_line_naming_the_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(MALFORMED)
    msg = _error(read_yaml_mapping, bad, "prompts file")
    assert "\n" not in msg
    assert msg.startswith(f"{bad}: prompts file is not valid YAML (") and ", line 3 column 2)" in msg
    # every reader of our YAML says it the same way
    assert _error(load_prompts, "malt_gsm8k", bad) == msg
    assert _error(generic_prompts, "gsm8k", bad) == msg
    assert _error(read_config, bad) == msg.replace("prompts file", "accelerate config")


def test_missing_empty_and_non_mapping_files(tmp_path):
    assert _error(read_yaml_mapping, tmp_path / "none.yaml", "prompts file") == (
        f"prompts file not found: {tmp_path / 'none.yaml'}"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    assert read_yaml_mapping(empty, "prompts file") == {}
    listed = tmp_path / "list.yaml"
    listed.write_text("- generator\n- refiner\n")
    assert _error(load_prompts, "malt_gsm8k", listed) == f"{listed}: prompts file must hold a mapping, not a list"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"generator: \xff\xfe\n")
    assert "is not UTF-8 text" in _error(read_config, binary)
