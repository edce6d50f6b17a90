#!/usr/bin/env bash
# Real results of the default embedded model shown in the README: g and g,v,r on a seeded random
# subset of 50 test questions of each task (seed 0, greedy, one vote).
# Usage: bash bench/readme_results.sh [OUT]   (resumable: finished rows are kept, an interrupted row
# resumes from its last finished batch of 10)
set -euo pipefail
out=${1:-results/readme}
dtype=${MALT_DTYPE:-auto}  # e.g. bfloat16: 2x faster than float32 on CPUs with AMX (BENCHMARKS.md)
export MALT_DATA_DIR=${MALT_DATA_DIR:-../shared/data} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
for task in ${MALT_README_TASKS:-malt_gsm8k malt_csqa malt_math}; do
  tokens=384; [ "$task" = malt_math ] && tokens=512
  for agents in g g,v,r; do
    dir="$out/$task-${agents//,/}"
    ls "$dir"/results_*.json >/dev/null 2>&1 && continue
    .venv/bin/malt-eval --agents "$agents" --tasks "$task" --seeds 1 --subset 50 --temperature 0 \
      --max-new-tokens "$tokens" --batch-size 10 --dtype "$dtype" --output-path "$dir" --log-samples
  done
done
