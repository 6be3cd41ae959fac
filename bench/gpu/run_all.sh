#!/usr/bin/env bash
# The full GPU report in one device call (prepare here with: npm run build && bash bench/gpu/pack.sh;
# then run with carry [".gpu", ".gl"]):  bash bench/gpu/run_all.sh [--quick]
# 1. kiln's benchmark CLI (every case checked before timing; TF.js WebGPU peer when packed),
# 2. the attention sweep (correctness against float64 and the reference path first, then fused vs
#    reference, forward and forward+backward), 3. PyTorch float32 on the same shapes, if python3 has torch.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-/tmp/kiln-out}"
quick=""; [ "${1:-}" = "--quick" ] && quick="--quick"
sizes="512,1024,2048,4096"; [ -n "$quick" ] && sizes="1024,4096"
bash bench/gpu/remote.sh bench/cli.mjs --suite all --sizes "$sizes" --batch 4 --heads 8 --runs 20 || echo "[run_all] bench CLI failed"
/tmp/node bench/gpu/attention_h100.mjs $quick 2>&1 | tee "$OUT/attention.log" || echo "[run_all] attention sweep failed"
if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  python3 bench/gpu/torch_ref.py $quick 2>&1 | tee "$OUT/torch.log"
else
  echo "[run_all] no CUDA PyTorch here: skipped"
fi
