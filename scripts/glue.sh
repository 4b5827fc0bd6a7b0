#!/usr/bin/env bash
# scripts/glue.sh — fine-tune and evaluate every GLUE task, then print one table (scripts/glue_table.py).
#   scripts/glue.sh                                   # MiniLM, full fine-tuning, 3 epochs, GLUE from the hub (network)
#   GLUE_PATH=/data/glue scripts/glue.sh              # a local copy laid out like nyu-mll/glue (README.md configs + files)
#   TASKS="cola stsb" MODEL=bert scripts/glue.sh trainer.epochs=2   # some tasks; arguments go to every ftcli train
#   scripts/glue.sh --quick                           # a smoke test: 200 training / 100 validation rows, 1 epoch
# Each task trains into $OUT/<task> and is evaluated into $OUT/<task>/eval (eval.json); the table goes to $OUT/glue.md.
set -euo pipefail
cd "$(dirname "$0")/.."
FTCLI=${FTCLI:-$( [ -x .venv/bin/ftcli ] && echo .venv/bin/ftcli || echo ftcli )}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
TASKS=${TASKS:-"cola sst2 mrpc stsb qqp mnli qnli rte wnli"}
MODEL=${MODEL:-minilm}
STRATEGY=${STRATEGY:-full}
OUT=${OUT:-outputs/glue_$(date +%Y-%m-%d_%H-%M-%S)}
extra=()
if [ "${1:-}" = "--quick" ]; then
  shift
  extra=(dataset.max_train_samples=200 dataset.max_eval_samples=100 trainer.epochs=1)
fi
[ -n "${GLUE_PATH:-}" ] && extra+=("dataset.path=$GLUE_PATH")
for task in $TASKS; do
  echo "== $task"
  "$FTCLI" train dataset=glue dataset.task="$task" model="$MODEL" strategy="$STRATEGY" "${extra[@]}" "$@" \
    hydra.run.dir="$OUT/$task"
  "$FTCLI" eval checkpoint="$OUT/$task" eval.plots=false eval.bootstrap=0 hydra.run.dir="$OUT/$task/eval"
done
"$PYTHON" scripts/glue_table.py "$OUT"
