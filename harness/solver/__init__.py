"""The multi-agent solver: a question's state and turns (:mod:`~harness.solver.state`); the generator, verifier and
refiner steps (:mod:`~harness.solver.steps`); multi-agent debate (:mod:`~harness.solver.debate`); plans (agent
chains, debate) (:mod:`~harness.solver.plans`); the question protocol both evaluation paths share (questions per
seed, batches, votes) (:mod:`~harness.solver.protocol`).

Imports the rooms below it: core, tasks, lm-eval's facts, inference.
"""
