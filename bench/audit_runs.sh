#!/usr/bin/env bash
# Real outputs for the grader audit (docs/results.md, "Grader audit"): SmolLM2-135M and the default model at
# temperature 0.7, g,v,r on the README's 50-question subsets (seed 0) of each task (150 role texts per task
# and model), then the README's greedy `g` rows of GSM8K and CSQA. Resumable: every run writes its
# checkpoint per batch; each chunk runs at most MALT_AUDIT_CHUNK_S seconds (default 570) and the loop
# reruns the same command until the row's results file exists.
# Usage: bash bench/audit_runs.sh [OUT]   (default results/audit); MALT_AUDIT_MODELS / MALT_AUDIT_TASKS pick
# the rows (several streams can run side by side on different rows), MALT_AUDIT_BATCH the questions per batch
# (a batch must finish within one chunk: 5 for the 0.5B model on a busy 2-core CPU), MALT_AUDIT_README=1 adds
# the README rows, MALT_AUDIT_MAX_CHUNKS the chunks a row gets before the next row starts (its finished
# batches stay in its checkpoint, which the audit reads).
set -uo pipefail
out=${1:-results/audit}
chunk=${MALT_AUDIT_CHUNK_S:-570}
export MALT_DATA_DIR=${MALT_DATA_DIR:-../shared/data} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one torch thread: on a shared CPU, 2 threads fight other jobs' threads
dtype=${MALT_DTYPE:-auto}  # e.g. bfloat16 (2x faster than float32 on CPUs with AMX)
wrap=${MALT_AUDIT_WRAP:-}   # e.g. /work/wt/bin/cpu-shared on a shared machine

row() {  # row DIR ARGS...: run malt-eval in chunks until DIR has its results file
  local dir=$1; shift
  local tries=0
  until ls "$dir"/results_*.json >/dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -gt "${MALT_AUDIT_MAX_CHUNKS:-20}" ] && { echo "$(date -u +%H:%M:%S) leaving $dir unfinished" >&2; return 0; }
    echo "$(date -u +%H:%M:%S) chunk $tries of $dir" >&2
    $wrap timeout -s TERM "$chunk" .venv/bin/malt-eval "$@" --seeds 1 --subset 50 --dtype "$dtype" --output-path "$dir" --log-samples
  done
}

for model in ${MALT_AUDIT_MODELS:-smollm2-135m qwen2.5-coder-0.5b}; do
  for task in ${MALT_AUDIT_TASKS:-malt_gsm8k malt_csqa malt_math}; do
    tokens=256; [ "$task" = malt_math ] && tokens=384
    row "$out/$model-t07/$task-gvr" --model "$model" --agents g,v,r --tasks "$task" --temperature 0.7 \
      --max-new-tokens "$tokens" --batch-size "${MALT_AUDIT_BATCH:-10}"
  done
done
[ -n "${MALT_AUDIT_README:-}" ] || exit 0
for task in malt_gsm8k malt_csqa; do  # the README rows (bench/readme_results.sh), greedy g
  row "$out/readme/$task-g" --agents g --tasks "$task" --temperature 0 --max-new-tokens 384 --batch-size 10
done
