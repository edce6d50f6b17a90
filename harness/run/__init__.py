"""Our malt_* tasks' evaluation path: the runner (:mod:`~harness.run.runner`); the per-task loop with grading and votes
(:mod:`~harness.run.evaluate`); the resumable record of finished batches (:mod:`~harness.run.checkpoint`); the
results files in lm-eval's layout (:mod:`~harness.run.results`).

A peer of :mod:`harness.lmeval`'s path (neither imports the other); :mod:`harness.api` sends a spec's malt_* tasks
here.
"""
