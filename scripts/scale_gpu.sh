#!/usr/bin/env bash
# scripts/scale_gpu.sh — one GPU vs every visible GPU (hardware=multi_gpu) at the same global batch.
#   scripts/scale_gpu.sh                       # MiniLM full fine-tuning on SST-2, 1 epoch
#   scripts/scale_gpu.sh model=bert            # extra overrides go to both runs
# Prints, for each run: processes, global batch, optimizer steps, samples/s, validation accuracy.
# Accuracy should agree within noise (same global batch, same steps); samples/s should grow with the GPUs.
set -euo pipefail
cd "$(dirname "$0")/.."
FTCLI=${FTCLI:-"python -m ftcli.cli"}
N=${N:-$(python -c "import torch; print(torch.cuda.device_count())")}
if [ "$N" -lt 2 ]; then echo "scale_gpu.sh: needs 2+ visible GPUs (found $N)"; exit 1; fi
PER_DEVICE=${PER_DEVICE:-32}                         # batch per GPU in the multi-GPU run
GLOBAL=$((PER_DEVICE * N))
OUT=${OUT:-outputs/scale_gpu}
COMMON=(model=minilm strategy=full trainer.epochs=1 trainer.save_checkpoints=false "$@")

$FTCLI train "${COMMON[@]}" hardware=gpu trainer.batch_size=$GLOBAL hydra.run.dir=$OUT/gpu1
$FTCLI train "${COMMON[@]}" hardware=multi_gpu hardware.num_processes=$N trainer.batch_size=$PER_DEVICE \
    hydra.run.dir=$OUT/gpu$N

python - "$OUT/gpu1" "$OUT/gpu$N" <<'PY'
import json, sys
for run in sys.argv[1:]:
    lines = [json.loads(x) for x in open(f"{run}/metrics.jsonl")]
    train = [x for x in lines if "samples_per_s" in x and "split" not in x]
    acc = json.load(open(f"{run}/metrics.json"))["accuracy"]
    print(f"{run}: steps {train[-1]['step']} · {train[-1]['samples_per_s']:.0f} samples/s · accuracy {acc:.4f}")
PY
