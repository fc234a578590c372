#!/usr/bin/env bash
# Usage: bash tools/dist_train.sh CONFIG GPUS [train.py options]
# Env: NNODES (1), NODE_RANK (0), MASTER_ADDR (127.0.0.1), PORT (a free
# port; set the same one on every node when NNODES > 1), PYTHON (python).
source "$(dirname "$0")/_launch.sh"
[ $# -ge 2 ] || usage "CONFIG GPUS [train.py options]"
CONFIG=$1
GPUS=$2
shift 2
launch_torchrun "$GPUS" "$TOOLS/train.py" "$CONFIG" --launcher pytorch "$@"
