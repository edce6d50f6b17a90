"""Print the README's results table from the folders written by bench/readme_results.sh."""

import json
import sys
from pathlib import Path

from tabulate import tabulate


def main(root: str = "results/readme") -> None:
    rows = []
    for path in sorted(Path(root).glob("*/results_*.json")):
        doc = json.loads(path.read_text())
        malt = doc["malt"]
        for task, res in doc["results"].items():
            n = doc["n-samples"][task]["effective"]
            acc = res["acc,none"]
            err = next(v for k, v in res.items() if k.startswith("acc_"))
            rows.append(
                [
                    task,
                    malt["agents"],
                    f"{100 * acc:.0f}% ({round(acc * n)}/{n})",
                    f"± {100 * err:.1f}",
                    f"{malt['tokens_per_question'][task]:.0f}",
                    f"{malt['wall_time'][task] / 60:.1f}",
                ]
            )
    print(tabulate(rows, headers=["task", "agents", "accuracy", "stderr", "tokens/q", "minutes"], tablefmt="github"))


if __name__ == "__main__":
    main(*sys.argv[1:])
