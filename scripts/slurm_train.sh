#!/usr/bin/env bash
# scripts/slurm_train.sh — ftcli train on several SLURM nodes; preemption-safe (requeue resumes).
#   sbatch --nodes=2 --gres=gpu:8 scripts/slurm_train.sh model=bert strategy=full
# One ftcli per node (it starts one worker per GPU). The run dir must be on a shared filesystem.
# SLURM sends SIGTERM before killing a job: ftcli saves a resumable state and exits; a requeued job
# finds that state (resume=<run dir>) and continues mid-epoch.
#SBATCH --job-name=ftcli
#SBATCH --ntasks-per-node=1
#SBATCH --signal=TERM@120
#SBATCH --requeue
#SBATCH --open-mode=append
set -euo pipefail
RUN=${RUN:-$PWD/outputs/slurm_${SLURM_JOB_ID}}
MASTER=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
RESUME=()
if [ -d "$RUN/state" ]; then RESUME=(resume="$RUN"); fi   # a requeued job: continue the run
srun --kill-on-bad-exit=1 bash -c "ftcli train hardware=multi_node hardware.num_machines=$SLURM_NNODES \
    hardware.machine_rank=\$SLURM_NODEID hardware.main_process_ip=$MASTER hardware.main_process_port=29500 \
    trainer.save_every_steps=${SAVE_EVERY:-500} hydra.run.dir=$RUN ${RESUME[*]} $*"
