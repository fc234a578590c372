# Shared by dist_train.sh, dist_test.sh, slurm_train.sh and slurm_test.sh
# (sourced, not run). Every argument is passed on as given (arrays, no word
# splitting or globbing); the repository goes on PYTHONPATH without empty
# entries (a stray ':' would put the current folder on the import path); the
# rendezvous port is a free one unless PORT is set.
set -euo pipefail
PYTHON=${PYTHON:-python}
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_pythonpath="$TOOLS/..:${PYTHONPATH:-}"
_pythonpath=$(printf '%s' "$_pythonpath" | tr -s ':')
_pythonpath=${_pythonpath%:}
export PYTHONPATH=${_pythonpath#:}

usage() {
    echo "Usage: bash $0 $1" >&2
    exit 2
}

free_port() {  # a port nothing listens on now, chosen by the OS
    "$PYTHON" -c 'import socket
s = socket.socket()
s.bind(("", 0))
print(s.getsockname()[1])
s.close()'
}

# launch_torchrun GPUS SCRIPT [ARGS...]: torchrun on this node.
launch_torchrun() {
    local gpus=$1
    shift
    local nnodes=${NNODES:-1}
    if [ "$nnodes" -gt 1 ] && [ -z "${PORT:-}" ]; then
        echo "NNODES=$nnodes: set PORT (the same on every node)" >&2
        exit 2
    fi
    local port=${PORT:-$(free_port)}
    exec "$PYTHON" -m torch.distributed.run \
        --nnodes="$nnodes" \
        --node_rank="${NODE_RANK:-0}" \
        --master_addr="${MASTER_ADDR:-127.0.0.1}" \
        --nproc_per_node="$gpus" \
        --master_port="$port" \
        "$@"
}

# launch_srun PARTITION JOB_NAME SCRIPT [ARGS...]: one task per GPU.
# SRUN_ARGS is split on white space only (no globbing).
launch_srun() {
    local partition=$1 job_name=$2
    shift 2
    local srun_args=()
    read -r -a srun_args <<< "${SRUN_ARGS:-}"
    export MASTER_PORT=${PORT:-$(free_port)}
    local gpus_per_node=${GPUS_PER_NODE:-8}
    exec srun -p "$partition" \
        --job-name="$job_name" \
        --gres=gpu:"$gpus_per_node" \
        --ntasks="${GPUS:-8}" \
        --ntasks-per-node="$gpus_per_node" \
        --cpus-per-task="${CPUS_PER_TASK:-5}" \
        --kill-on-bad-exit=1 \
        "${srun_args[@]}" \
        "$PYTHON" -u "$@"
}
