#!/bin/bash
# py-spy each row of a running bench/throughput.py once: 150 s at 10 Hz, with subprocesses (vLLM's
# EngineCore and worker), starting 4 min after the row (8 min for vLLM rows, after the engine start).
# Usage (beside the benchmark): bash bench/profile_rows.sh OUT_DIR   ->  OUT_DIR/<row>.txt, index.txt
# Then: python bench/profile_shares.py OUT_DIR/*.txt
out=${1:?usage: profile_rows.sh OUT_DIR}; mkdir -p "$out"
spy=${PY_SPY:-py-spy}
seen="$(pgrep -f throughput_rows.py | tr '\n' ' ')"
while pgrep -f "bench/throughput.py" >/dev/null; do
  for pid in $(pgrep -f "throughput_rows.py"); do
    case " $seen " in *" $pid "*) continue;; esac
    seen="$seen $pid"
    spec=$(tr '\0' ' ' < /proc/$pid/cmdline | grep -o '{.*}')
    name=$(echo "$spec" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("_".join(str(s.get(k,"")) for k in ("kind","agents","backend","questions","repeat")))')
    echo "$(date -u +%H:%M) $pid $name" >> "$out/index.txt"
    wait_s=240; case $name in *vllm*) wait_s=480;; esac
    ( sleep $wait_s; "$spy" record -p "$pid" --subprocesses -d 150 -r 10 -f raw -o "$out/$name.txt" --nonblocking >/dev/null 2>&1 ) &
  done
  sleep 20
done
