#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py options]
# Env: as tools/dist_train.sh.
source "$(dirname "$0")/_launch.sh"
[ $# -ge 3 ] || usage "CONFIG CHECKPOINT GPUS [test.py options]"
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
shift 3
launch_torchrun "$GPUS" "$TOOLS/test.py" "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
