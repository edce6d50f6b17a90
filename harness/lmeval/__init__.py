"""lm-eval's tasks: the ``malt`` model lm-eval calls (:mod:`~harness.lmeval.model`); the run through
``lm_eval.simple_evaluate`` (:mod:`~harness.lmeval.run`); the roles' steps on lm-eval's contexts
(:mod:`~harness.lmeval.solver`); our additions to the files lm-eval writes (:mod:`~harness.lmeval.outputs`); which
lm-eval tasks exist and which the solver can answer (:mod:`~harness.lmeval.tasks`); what a task's own code needs
beyond lm-eval (:mod:`~harness.lmeval.needs`); the only module touching lm-eval's private names
(:mod:`~harness.lmeval.compat`).

The last three (task lookup, needs, compat) are lm-eval's facts: they import only core and tasks, sit just above
:mod:`harness.tasks` and serve the spec and both paths. The rest is the lm-eval path, a peer of :mod:`harness.run`.
"""
