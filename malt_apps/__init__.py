"""The applications on top of the libraries: ``malt-eval`` (and its suite), ``malt-train``, ``malt-leaderboard``.

Layers, bottom up: ``harness`` (evaluation library) <- ``malt_train``, ``leaderboard`` <- ``malt_apps``. Each
command fills a library config (:class:`harness.spec.EvalSpec`, :class:`malt_train.generate.GenerateConfig`,
...) from its flags, calls the library and prints; the flags themselves are made from the configs' fields
(:mod:`malt_apps.options`).
"""
