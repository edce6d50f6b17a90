import pytest
import yaml

from harness.core.errors import MaltError
from harness.tasks.prompts import ROLES, load_prompts

CSQA_DOC = {
    "answerKey": "A",
    "question": {"stem": "Where?", "choices": [{"label": k, "text": f"t{k}"} for k in "ABCDE"]},
}


def test_each_task_has_all_roles_and_renders():
    for task in ("malt_gsm8k", "malt_math", "malt_csqa"):
        p = load_prompts(task)
        for role in ROLES:
            msgs = p.messages(role, question="Q?", solution="S.", critique="C.")
            assert msgs[-1]["role"] == "user" and "Q?" in msgs[-1]["content"]
    assert "Final Answer: <letter>" in load_prompts("malt_csqa").messages("generator", question="x")[-1]["content"]
    assert "\\boxed{}" in load_prompts("malt_math").messages("generator", question="x")[-1]["content"]


def test_csqa_question_shows_lettered_choices():
    q = load_prompts("malt_csqa").question(CSQA_DOC)
    assert q.splitlines() == ["Where?", "A: tA", "B: tB", "C: tC", "D: tD", "E: tE"]


def test_override_file_changes_prompts_and_hash(tmp_path):
    base = load_prompts("malt_gsm8k")
    spec = {r: {"system": "", "user": f"{r}: {{{{ question }}}}"} for r in ROLES}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(spec))
    over = load_prompts("malt_gsm8k", path)
    assert over.messages("generator", question="Q") == [{"role": "user", "content": "generator: Q"}]
    assert over.hash != base.hash and len(over.hash) == 16
    assert over.question({"question": "hi"}) == "hi"  # question template falls back to the task's
    path.write_text(yaml.safe_dump({"malt_math": spec}))  # per-task file: other tasks keep theirs
    assert load_prompts("malt_gsm8k", path).hash == base.hash
    assert load_prompts("malt_math", path).hash != load_prompts("malt_math").hash


def test_override_with_missing_role_is_an_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"generator": {"user": "x"}, "verifier": {"user": "y"}}))
    with pytest.raises(MaltError, match="'refiner' is missing"):
        load_prompts("malt_gsm8k", path)
    with pytest.raises(MaltError, match="not found"):
        load_prompts("malt_gsm8k", tmp_path / "none.yaml")


def test_prompt_templates_render_sandboxed(tmp_path):
    """A prompts file cannot reach Python internals (and through them, code): the sandbox refuses."""
    escape = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    spec = {r: {"user": "{{ question }}"} for r in ROLES} | {"question": escape + "{{ doc.question }}"}
    spec["verifier"] = {"user": "{{ question.__class__.__init__.__globals__ }}"}
    path = tmp_path / "evil.yaml"
    path.write_text(yaml.safe_dump(spec))
    p = load_prompts("malt_gsm8k", path)
    with pytest.raises(MaltError, match="sandbox"):
        p.question({"question": "hi"})
    with pytest.raises(MaltError, match="sandbox"):
        p.messages("verifier", question="Q")
    assert p.messages("generator", question="Q")[-1]["content"] == "Q"  # plain templates still render
