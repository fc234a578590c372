"""What machine and process this is: native bf16 support, the machine's
description for result tables, seconds since the process started; and the
one process setting CPU training needs (:func:`keep_freed_memory`)."""
import ctypes
import ctypes.util
import platform
import time

import torch


def cpu_has_native_bf16(cpuinfo: str = None) -> bool:
    """AVX512-BF16 or AMX (bf16 matmuls at least at the fp32 rate), read from
    ``/proc/cpuinfo`` (or the text given)."""
    if cpuinfo is None:
        try:
            with open('/proc/cpuinfo') as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith('flags'):
            flags.update(line.split(':', 1)[1].split())
    return bool({'avx512_bf16', 'amx_bf16'} & flags)


def machine() -> dict:
    """The CPU model, threads, torch's CPU kernel level, native bf16, torch
    and Python versions, and the GPU when there is one."""
    cpu = platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    info = dict(cpu=cpu, threads=torch.get_num_threads(),
                cpu_capability=torch.backends.cpu.get_cpu_capability(),
                native_bf16=cpu_has_native_bf16(),
                torch=torch.__version__, python=platform.python_version())
    if torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name()
    return info


def process_seconds() -> float:
    """Seconds since this process started (Linux ``/proc``: interpreter
    start and imports included), or since this module was imported where
    ``/proc`` is missing."""
    import os
    try:
        with open('/proc/self/stat') as f:
            # Field 22 (starttime, clock ticks after boot), counted after
            # the command name, which may hold spaces.
            start = int(f.read().rsplit(')', 1)[1].split()[19])
        with open('/proc/uptime') as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start / os.sysconf('SC_CLK_TCK'))
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_kept = None


def keep_freed_memory() -> bool:
    """Let this process keep the memory it frees for its next allocations
    (glibc: ``mallopt``), instead of handing it back to the OS and
    page-faulting it in again.

    A CPU training step allocates its activations afresh each step; with
    glibc's defaults the freed pages go back to the OS and the next
    forward touches new ones: the forward of STAN-attn B/16 (batch 2, 8
    frames) took 1.8x an inference forward, 1.07x with this (the training
    step 3.9x -> 3.2x an inference; docs/performance.md). Settings: blocks
    up to 32 MiB (glibc's largest threshold) from the heap, freed memory
    kept up to 2 GiB, heap grown 64 MiB at a time. Process-wide and for
    its lifetime (the resident size stays near its peak). Returns whether
    it applied (False off glibc: musl, macOS, Windows).
    """
    global _kept
    if _kept is None:
        _kept = False
        name = ctypes.util.find_library('c')
        try:
            libc = ctypes.CDLL(name) if name else None
        except OSError:
            libc = None
        if libc is not None and hasattr(libc, 'gnu_get_libc_version') \
                and hasattr(libc, 'mallopt'):
            _kept = all(libc.mallopt(opt, value) == 1 for opt, value in (
                (_M_MMAP_THRESHOLD, 32 * 2**20),
                (_M_TRIM_THRESHOLD, 2**31 - 1),
                (_M_TOP_PAD, 64 * 2**20)))
    return _kept
