#!/usr/bin/env bash
# On a machine with an NVIDIA GPU and onnxruntime-node's CUDA provider: generation and a short
# fine-tune of a GPT-2 124M-shaped model (random weights) on CUDA and on the CPU, tokens/s side
# by side as JSON lines, within GPU_CHECK_LIMIT_S seconds (default 300). Exits 1 with a
# "gpu-check: FAILED" line on stderr when CUDA is missing or did not do the work (see
# bench/gpu-check.ts for the checks and options; --cpu-only runs the CPU half alone).
#
#   bench/gpu-check.sh [--cpu-only] [--preset gpt2] [--new-tokens 128] [--steps 20] ...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
limit="${GPU_CHECK_LIMIT_S:-300}"
if [ ! -d node_modules/onnxruntime-node ]; then
  echo "gpu-check: FAILED: node_modules/onnxruntime-node is missing; run npm ci first" >&2
  exit 1
fi
timeout --kill-after=15 "$limit" node --import tsx bench/gpu-check.ts "$@"
status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "gpu-check: FAILED: did not finish within ${limit} s" >&2
fi
exit "$status"
