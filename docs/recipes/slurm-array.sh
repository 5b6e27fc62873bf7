#!/usr/bin/env bash
# A Slurm job array of tuner workers: every array element is one `tuner worker` on the same
# study, against the same PostgreSQL database; the database hands out the trials.
#
#   tuner study create my-study --task digits-mlp --optimizers adamw,sgd,lion --trials 40 \
#       --seeds 3 --db "$TUNER_DB"
#   TUNER_DB=postgresql://user:pass@dbhost/tuner sbatch --export=ALL slurm-array.sh my-study
#
# An element that dies (preempted, out of time) leaves its trial to be reaped and retried by
# the others after the grace period; resubmitting the array resumes the study.
#SBATCH --job-name=tuner-worker
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=tuner-%A_%a.log
# For GPUs add `#SBATCH --gres=gpu:1`: Slurm sets CUDA_VISIBLE_DEVICES for the element.
set -euo pipefail

study="${1:?usage: sbatch slurm-array.sh STUDY (with TUNER_DB set to a PostgreSQL URL)}"
: "${TUNER_DB:?set TUNER_DB to the PostgreSQL URL of the study}"
export TUNER_DB

echo "tuner worker ${study}: array element ${SLURM_ARRAY_TASK_ID:-?} on $(hostname)"
exec tuner worker "${study}" --threads "${SLURM_CPUS_PER_TASK:-1}"
