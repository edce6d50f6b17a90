"""A built wheel carries tasks/ (YAML, prompts, hooks) and runs an evaluation from any folder."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

SOURCES = ("harness", "malt_train", "leaderboard", "malt_apps", "tasks", "pyproject.toml", "README.md")


def test_wheel_ships_tasks_and_evaluates_from_another_folder(tmp_path, tiny_model_dir, small_data):
    src = tmp_path / "src"
    for name in SOURCES:  # build from a copy: pip builds in-tree and would leave build/ in the repository
        copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy2
        copy(
            REPO / name,
            src / name,
            **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}),
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    r = subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist", src],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("malt_harness-*.whl"))
    site = tmp_path / "site"
    r = subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (site / "malt_tasks" / "malt_gsm8k" / "prompts.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "MALT_DATA_DIR": str(small_data)}
    env.pop("MALT_TASKS_DIR", None)
    where = "import harness, harness.tasks.prompts as p; print(harness.__file__); print(p.tasks_dir())"
    r = subprocess.run([sys.executable, "-c", where], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    module, tasks = (Path(line) for line in r.stdout.split())
    assert module.is_relative_to(site) and tasks == site / "malt_tasks"  # the wheel's code and tasks, not the repo's
    out = tmp_path / "out"
    args = ["--model", tiny_model_dir, "--agents", "g", "--limit", 1, "--max-new-tokens", 4, "--temperature", 0]
    r = subprocess.run(
        [sys.executable, "-m", "malt_apps.eval_cli", *map(str, args), "--output-path", str(out)],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "malt_gsm8k (limit)" in r.stdout and next(out.glob("results_*.json")).is_file()
