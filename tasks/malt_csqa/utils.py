"""lm-eval hooks of malt_csqa: thin wrappers over harness.tasks.hooks."""

from functools import partial

from harness.tasks import hooks as task_hooks

TASK = "malt_csqa"
load_dataset = partial(task_hooks.load_dataset, TASK)
doc_to_text = partial(task_hooks.doc_to_text, TASK)
doc_to_target = partial(task_hooks.doc_to_target, TASK)
process_results = partial(task_hooks.process_results, TASK)
