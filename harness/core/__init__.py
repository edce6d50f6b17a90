"""Low shared pieces every room uses: one-line errors (:mod:`~harness.core.errors`); atomic files, JSONL records, the
output-folder lock and the cache folder (:mod:`~harness.core.runfiles`); a run folder's record
(:mod:`~harness.core.identity`); content digests (:mod:`~harness.core.digests`); malt-train run folders
(:mod:`~harness.core.maltrun`); role names (:mod:`~harness.core.roles`); when a new results file supersedes an
earlier one (:mod:`~harness.core.supersede`); how we read our own YAML files (:mod:`~harness.core.yamlfiles`).

Imports nothing else from ``harness``.
"""
