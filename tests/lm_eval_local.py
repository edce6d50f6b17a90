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


# --------------------------------------------------------------------------- task families, on rows written here
#: Two tiny hand-written rows per family, in each task's own schema (row 0 is the one the tests answer right).
FAMILY_ROWS: dict[str, list[dict]] = {
    "gsm8k": [
        {"question": "Tom has 3 apples and buys 4 more. How many apples does Tom have?", "answer": "3+4=7\n#### 7"},
        {"question": "A box holds 6 pens. How many pens are in 2 boxes?", "answer": "6*2=12\n#### 12"},
    ],
    "math": [
        {
            "problem": "What is $2+3$?",
            "solution": "We add: $2+3=\\boxed{5}$.",
            "level": "Level 1",
            "type": "Algebra",
        },
        {
            "problem": "Simplify $\\frac{6}{8}$.",
            "solution": "Divide by 2: $\\boxed{\\frac{3}{4}}$.",
            "level": "Level 1",
            "type": "Prealgebra",
        },
    ],
    "bbh": [{"input": "not ( False ) is", "target": "True"}, {"input": "True and False is", "target": "False"}],
    "ifeval": [
        {
            "key": 1,
            "prompt": "Describe the sea in lowercase letters only and without commas.",
            "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
            "kwargs": [{}, {}],
        },
        {
            "key": 2,
            "prompt": "Name a fruit in fewer than 3 sentences.",
            "instruction_id_list": ["length_constraints:number_sentences"],
            "kwargs": [{"relation": "less than", "num_sentences": 3}],
        },
    ],
    "triviaqa": [
        {
            "question": "Which city is the capital of France",
            "question_id": "q1",
            "answer": {"value": "Paris", "aliases": ["Paris", "Paris, France"]},
        },
        {
            "question": "Which planet is closest to the Sun",
            "question_id": "q2",
            "answer": {"value": "Mercury", "aliases": ["Mercury"]},
        },
    ],
    "humaneval": [
        {
            "task_id": "Local/0",
            "prompt": 'def add(a, b):\n    """Return the sum of a and b."""\n',
            "canonical_solution": "    return a + b\n",
            "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n",
            "entry_point": "add",
        },
        {
            "task_id": "Local/1",
            "prompt": 'def double(x):\n    """Return twice x."""\n',
            "canonical_solution": "    return 2 * x\n",
            "test": "def check(candidate):\n    assert candidate(4) == 8\n",
            "entry_point": "double",
        },
    ],
}
#: family -> (local task name, the stock YAML it includes, its splits' rows: FAMILY_ROWS key)
FAMILY_TASKS: dict[str, list[tuple[str, str]]] = {
    "gsm8k": [
        ("gsm8k_fam_local", "gsm8k/gsm8k.yaml"),
        ("gsm8k_cot_fam_local", "gsm8k/gsm8k-cot.yaml"),
        ("gsm8k_cot_zs_fam_local", "gsm8k/gsm8k-cot-zeroshot.yaml"),
    ],
    "math": [
        ("minerva_math_algebra_local", "minerva_math/minerva_math_algebra.yaml"),
        ("minerva_math500_local", "minerva_math/minerva_math500.yaml"),
    ],
    "bbh": [("bbh_cot_fewshot_boolean_local", "bbh/cot_fewshot/boolean_expressions.yaml")],
    "ifeval": [("ifeval_local", "ifeval/ifeval.yaml")],
    "triviaqa": [("triviaqa_local", "triviaqa/default.yaml")],
    "humaneval": [("humaneval_local", "humaneval/humaneval.yaml")],
}


def _train_rows(family: str) -> list[dict]:
    """Few-shot rows for tasks that draw them from a train split (gsm8k: 5-shot; triviaqa has one)."""
    if family == "gsm8k":
        return [{"question": f"What is {i} plus {i}?", "answer": f"{i}+{i}={2 * i}\n#### {2 * i}"} for i in range(1, 7)]
    return FAMILY_ROWS[family]


def write_family_tasks(folder: Path, family: str) -> list[str]:
    """Write ``family``'s local task YAMLs (stock definitions via ``include:``, on :data:`FAMILY_ROWS`) into
    ``folder``; return their task names."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, rows in (("test", FAMILY_ROWS[family]), ("train", _train_rows(family))):
        files[split] = folder / f"{family}_{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    names = []
    for name, stock in FAMILY_TASKS[family]:
        text = f"include: {STOCK / stock}\ntask: {name}\ndataset_path: json\ndataset_name: null\n"
        # every split the stock task reads (test, validation, train) comes from the local files
        text += "test_split: test\nvalidation_split: null\ndataset_kwargs:\n  data_files:\n"
        text += f"    test: {files['test']}\n    train: {files['train']}\n"
        if family == "ifeval":  # ifeval evaluates its train split (its only one)
            text = text.replace("test_split: test\n", "test_split: test\ntraining_split: null\n")
        (folder / f"{name}.yaml").write_text(text)
        names.append(name)
    return names
