#!/usr/bin/env bash
# One prepared GPU check (< 8 minutes): ftcli's training throughput and MFU on bert-base's architecture.
# Run from the repo root on a machine with a CUDA GPU. The GPU image may lack some of ftcli's pure-Python
# dependencies: wheels placed in .whl/ (see README, "Performance") are installed first, without network.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
out="${OUT:-/tmp}"
timeout 460 python3 scripts/bench_gpu.py --steps "${STEPS:-400}" --out "$out/bench_gpu.md"
