#!/usr/bin/env bash
# The one command for a lent GPU machine (Python with torch, transformers, tokenizers, rich; no hub):
#
#   bash bench/gpu_run.sh                 # results under $OUT (default ./gpu_out)
#   ABLATION=1 bash bench/gpu_run.sh      # + a torch.compile run in the time left
#   GPU_TRAIN_ARGS="--tiny" bash bench/gpu_run.sh   # smoke test of this script on a CPU
#
# Prints nvidia-smi, then runs bench/gpu_train.py --compare: the reference-like baseline (fp32, batch 16,
# lr 5e-5, padding to 128, unfused AdamW) for a fixed number of steps, then the full run to early stopping,
# scored on the test split. Every run sits under `timeout`; the whole script stays under 9 minutes.
# gpu_train.py rewrites its JSON after every evaluation, so a run cut by the timeout still leaves numbers.
set -uo pipefail

cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
BUDGET=520   # seconds for everything below (9 minutes = 540)
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  nvidia-smi || echo "nvidia-smi failed"
  "$PY" -c "import sys, torch, transformers; print('python', sys.version.split()[0], '| torch', torch.__version__, \
'| cuda', torch.version.cuda, '| transformers', transformers.__version__, '| gpu', \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} 2>&1 | tee "$OUT/env.txt"

# Baseline + full run. The full run stops itself at the first evaluation after 300 s (--time-budget) if early
# stopping has not ended it before; the timeout is the hard stop.
timeout --signal=INT --kill-after=15 420 \
  "$PY" bench/gpu_train.py --compare --time-budget 300 --out "$OUT/gpu_train.json" ${GPU_TRAIN_ARGS:-} 2>&1 | tee "$OUT/gpu_train.log"
rc=${PIPESTATUS[0]}
echo "gpu_train.py --compare: exit $rc after $(elapsed) s" | tee -a "$OUT/gpu_train.log"

left=$(( BUDGET - $(elapsed) ))
if [ "${ABLATION:-0}" = "1" ] && [ "$rc" -eq 0 ] && [ "$left" -gt 150 ]; then
  timeout --signal=INT --kill-after=15 $(( left - 20 )) \
    "$PY" bench/gpu_train.py --compile --time-budget $(( left - 90 )) --out "$OUT/gpu_train_compile.json" \
    ${GPU_TRAIN_ARGS:-} 2>&1 | tee "$OUT/gpu_train_compile.log"
  echo "gpu_train.py --compile: exit ${PIPESTATUS[0]} after $(elapsed) s" | tee -a "$OUT/gpu_train_compile.log"
fi
echo "results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
