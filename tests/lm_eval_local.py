"""Stock lm-eval task definitions pointed at local rows (offline): YAMLs that ``include:`` lm-eval's own files."""

from __future__ import annotations

import json
from pathlib import Path

import lm_eval

STOCK = Path(lm_eval.__file__).parent / "tasks"
#: BBH-style rows built here (lm-eval's boolean_expressions format): expression -> its value.
BOOLEAN_ROWS = ["not ( True ) and ( True )", "True and not not ( not False )", "not True or ( False and True )"]

GSM8K_COT_ZS = "gsm8k_cot_zs_local"
GSM8K_5SHOT = "gsm8k_local"
BBH_BOOL = "bbh_cot_zs_boolean_local"
TASKS = (GSM8K_COT_ZS, GSM8K_5SHOT, BBH_BOOL)


def write_local_tasks(folder: Path, data: Path) -> Path:
    """Write the three local task YAMLs (and the BBH rows) into ``folder``; ``data`` is a MALT data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    gsm8k = f"""    data_files:
      test: {data / "gsm8k" / "test.jsonl"}
      train: {data / "gsm8k" / "train.jsonl"}
"""
    (folder / f"{GSM8K_COT_ZS}.yaml").write_text(
        f"include: {STOCK / 'gsm8k' / 'gsm8k-cot-zeroshot.yaml'}\ntask: {GSM8K_COT_ZS}\n"
        f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n{gsm8k}"
    )
    (folder / f"{GSM8K_5SHOT}.yaml").write_text(
        f"include: {STOCK / 'gsm8k' / 'gsm8k.yaml'}\ntask: {GSM8K_5SHOT}\n"
        f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n{gsm8k}"
    )
    rows = folder / "boolean_expressions.jsonl"
    rows.write_text("".join(json.dumps({"input": f"{e} is", "target": str(eval(e))}) + "\n" for e in BOOLEAN_ROWS))
    (folder / f"{BBH_BOOL}.yaml").write_text(
        f"include: {STOCK / 'bbh' / 'cot_zeroshot' / 'boolean_expressions.yaml'}\ntask: {BBH_BOOL}\n"
        f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n    data_files:\n      test: {rows}\n"
    )
    return folder
