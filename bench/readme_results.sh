#!/usr/bin/env bash
# Real results of the default embedded model shown in the README: g and g,v,r on a seeded random
# subset of 50 test questions of each task (seed 0, greedy, one vote), and the same 50 GSM8K questions
# through lm-eval's stock gsm8k_cot_zeroshot (pointed at the local test file, chat template on).
# Usage: bash bench/readme_results.sh [OUT]   (resumable: finished rows are kept, an interrupted row
# resumes from its last finished batch of 10; MALT_README_TASKS picks rows, e.g. "malt_gsm8k gsm8k_cot_zs_local")
set -euo pipefail
out=${1:-results/readme}
dtype=${MALT_DTYPE:-auto}  # auto: bf16 on GPUs and CPUs with native bf16 (AVX512-BF16/AMX), else fp32
export MALT_DATA_DIR=${MALT_DATA_DIR:-../shared/data} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
for task in ${MALT_README_TASKS:-malt_gsm8k gsm8k_cot_zs_local malt_csqa malt_math}; do
  tokens=384; [ "$task" = malt_math ] && tokens=512
  extra=()
  if [ "$task" = gsm8k_cot_zs_local ]; then  # lm-eval's own YAML, included, on the local rows
    .venv/bin/python -c "import sys; from pathlib import Path; from tests.lm_eval_local import write_local_tasks as w
w(Path(sys.argv[1]), Path(sys.argv[2]).resolve())" "$out/lm_eval_tasks" "$MALT_DATA_DIR"
    extra=(--include-path "$out/lm_eval_tasks" --apply-chat-template)
  fi
  for agents in g g,v,r; do
    dir="$out/$task-${agents//,/}"
    [ -n "$(find "$dir" -maxdepth 2 -name 'results_*.json' 2>/dev/null)" ] && continue
    .venv/bin/malt-eval --agents "$agents" --tasks "$task" --seeds 1 --subset 50 --temperature 0 \
      --max-new-tokens "$tokens" --batch-size 10 --dtype "$dtype" --output-path "$dir" --log-samples "${extra[@]}"
  done
done
