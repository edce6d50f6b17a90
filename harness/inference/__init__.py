"""Where the roles run: model names, hub ids and the embedded models (:mod:`~harness.inference.models`); a role's
engine (a backend and its adapter) and the loading of every role's engine (:mod:`~harness.inference.engines`); the
backends: hf, vllm, openai, scripted (:mod:`~harness.inference.backends`).

Imports the rooms below it: core, tasks, lm-eval's facts.
"""
