"""leaderboard: tables, a web page and plots from malt-eval results (in progress)."""
