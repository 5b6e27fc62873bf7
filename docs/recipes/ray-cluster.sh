#!/usr/bin/env bash
# A study on a Ray cluster: Ray starts, places and restarts the workers; the PostgreSQL
# database every node reaches stays the only coordinator.
set -euo pipefail
: "${TUNER_DB:?set TUNER_DB to a PostgreSQL URL every node of the cluster reaches}"
: "${HEAD:=127.0.0.1}"

# 1. On the head node (once):
ray start --head --port=6379 --num-cpus=8
# 2. On every other node (tuner, torch and your plugins installed in the same environment):
#      ray start --address="${HEAD}:6379"

# 3. From the head node: create the study, then run it with 8 workers of 2 CPUs and a quarter
#    of a GPU each (drop --gpus-per-worker on CPU-only clusters).
tuner study create ray-demo --task digits-mlp --optimizers adamw,sgd,lion --trials 40 --seeds 3 \
    --db "$TUNER_DB"
tuner study run ray-demo --backend ray --address auto --workers 8 --cpus-per-worker 2 \
    --gpus-per-worker 0.25 --db "$TUNER_DB"

# 4. When done: ray stop (on every node).
