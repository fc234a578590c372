"""Measurement primitives of the analysis tools: peak memory, timing in
alternation, the machine's matmul rate, measuring in a forked child.

Every number compared in one table should come from one
:func:`measure_alternating` call: the tasks run in turns, so machine noise
(other processes, frequency changes) hits all of them alike.
"""
import gc
import statistics
import time
from typing import Callable, Dict, Tuple

import torch

from ..utils.system import cpu_has_native_bf16


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    return 0


def rss_bytes() -> int:
    """This process's resident memory now (Linux ``/proc``; 0 elsewhere)."""
    return _rss_kb('VmRSS') * 1024


class PeakMemory:
    """Peak memory of a block above what the process held when it began
    (bytes, in ``.peak``). CPU: resets the kernel's peak-RSS mark (VmHWM,
    Linux); GPU: CUDA's allocator statistics.

    In a long-lived process the allocator keeps freed memory, so a later
    peak can look smaller than it is: measure in a fresh process where that
    matters.
    """

    def __init__(self, device: str = 'cpu'):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            # Garbage left by earlier work, collected inside the block
            # (a collection can run at any allocation), would lower RSS
            # there and hide the block's own peak: collect it first.
            gc.collect()
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')  # reset VmHWM to the current RSS
            self.base = rss_bytes()
        return self

    def __exit__(self, *exc):
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self.peak = _rss_kb('VmHWM') * 1024 - self.base
        return False


def in_forked_child(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)`` run in a child forked from this process; its
    result (JSON data) returned here. Peak-memory measurements use it from
    a process that has only imported: each child starts from that state
    (an allocator holding nothing of the measurements before it), without
    paying a fresh interpreter's imports. POSIX only.

    Raises:
        RuntimeError: when the child fails (its traceback on stderr).
    """
    import json
    import os
    import traceback
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run, report, exit without cleanup
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, 'w') as f:
                f.write(json.dumps(fn(*args, **kwargs)))
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f'{getattr(fn, "__name__", fn)} failed in its '
                           'forked child (see its traceback above)')
    return json.loads(text)


def _sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def timed(fn: Callable, device: str = 'cpu') -> float:
    """Seconds of one call of ``fn`` (GPU work included)."""
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def measure_alternating(tasks: Dict[object, Callable], repeats: int,
                        warmup: int, device: str = 'cpu'
                        ) -> Dict[object, dict]:
    """``tasks``: key -> zero-argument callable. Warm each up, then run all
    of them ``repeats`` times in alternation.

    Returns:
        dict: key -> ``seconds`` (median), ``runs`` (every time) and
        ``peak_bytes`` (peak memory of the first timed run).
    """
    if repeats < 1:
        raise ValueError(f'repeats must be >= 1, got {repeats}')
    for fn in tasks.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in tasks}
    memory = {}
    for r in range(repeats):
        for key, fn in tasks.items():
            if r == 0:
                with PeakMemory(device) as mem:
                    times[key].append(timed(fn, device))
                memory[key] = mem.peak
            else:
                times[key].append(timed(fn, device))
    return {k: dict(seconds=statistics.median(v), runs=v,
                    peak_bytes=memory[k]) for k, v in times.items()}


def matmul_rate(dtype: torch.dtype, device: str = 'cpu',
                n: int = 4096) -> Tuple[Callable, int]:
    """A square ``n x n`` matmul to time, and its FLOPs (``2 n^3``). On a CPU
    without native bf16 the bf16 size drops to 512 (emulated bf16 runs below
    1 GFLOP/s)."""
    if device == 'cpu' and dtype == torch.bfloat16 and \
            not cpu_has_native_bf16():
        n = 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return (lambda: a @ b), 2 * n**3
