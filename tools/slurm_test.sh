#!/usr/bin/env bash
# Usage: bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT
#        [test.py options]
# Env: as tools/slurm_train.sh.
source "$(dirname "$0")/_launch.sh"
[ $# -ge 4 ] || usage "PARTITION JOB_NAME CONFIG CHECKPOINT [test.py options]"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
shift 4
launch_srun "$PARTITION" "$JOB_NAME" "$TOOLS/test.py" "$CONFIG" \
    "$CHECKPOINT" --launcher=slurm "$@"
