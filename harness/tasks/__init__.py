"""Facts about our malt_* tasks: what each task is (:mod:`~harness.tasks.taskinfo`); its questions
(:mod:`~harness.tasks.data`); the role prompts (:mod:`~harness.tasks.prompts`); the audited grader
(:mod:`~harness.tasks.grading`); what a model's text states, as the graders read it
(:mod:`~harness.tasks.statements`); what grading could not do (:mod:`~harness.tasks.grading_faults`); majority
voting (:mod:`~harness.tasks.voting`); the lm-eval hooks our task YAMLs call (:mod:`~harness.tasks.hooks`).

Imports only :mod:`harness.core`.
"""
