#!/usr/bin/env bash
# Usage: bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [train.py options]
# Env: GPUS (8), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS, PORT (a
# free port, exported as MASTER_PORT), PYTHON (python).
source "$(dirname "$0")/_launch.sh"
[ $# -ge 3 ] || usage "PARTITION JOB_NAME CONFIG [train.py options]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
launch_srun "$PARTITION" "$JOB_NAME" "$TOOLS/train.py" "$CONFIG" \
    --launcher=slurm "$@"
